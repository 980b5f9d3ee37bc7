"""V1 trainer hook (verl 0.9 default, ``trainer.use_v1=true``).

``PPOTrainer._compute_advantage`` fetches only uid/response_mask/rm_scores/... from TransferQueue, so the reward
components never reach the estimator. The wrapper fetches them (each row's ``extra_fields['reward_extra_info']``, or
top-level fields in colocated reward-model mode), exposes them and the rows' session layout to the estimator for the
duration of the call, then merges the estimator's metrics into the step's metrics dict.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gdpo_verl_plugins import metrics_bridge, reward_metrics, verl_shapes

MODULE = verl_shapes.V1_ADVANTAGE.module


@dataclass(frozen=True)
class BatchContext:
    components: dict[str, list]  # reward key -> one value per row (None where a row lacks it)
    # (rows that count: each real session's final output; row -> its position there, -1 for a padding row)
    final_rows: tuple[np.ndarray, np.ndarray] | None
    step: int | None = None  # the trainer's global_steps (for weight schedules)


_current: contextvars.ContextVar[BatchContext | None] = contextvars.ContextVar("gdpo_verl_v1_batch", default=None)


def current() -> BatchContext | None:
    return _current.get()


def padding_rows(tags: list[dict]) -> np.ndarray:
    """Which rows verl added to make the batch divisible (``padding_utils.upsample_batch_to_divisible_size`` tags
    them ``is_padding``): copies of row 0's sample that are no rollouts and must count nowhere."""
    return np.array([bool(tag.get("is_padding", False)) for tag in tags], dtype=bool)


def session_layout(row_keys: list[str], padding: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows that count and where each row finds its value: ``(final, owner)`` with ``final`` the final output of
    each real session (rows keyed ``{uid}_{session}_{output}``) and ``owner[row]`` its session's position in
    ``final``, -1 for a padding row. None when every row is a real one-output session (the common case)."""
    padding = np.zeros(len(row_keys), dtype=bool) if padding is None else np.asarray(padding, dtype=bool)
    real = np.flatnonzero(~padding)
    sessions, outputs = [], []
    for i in real:
        parts = row_keys[i].rsplit("_", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            sessions, outputs = [row_keys[j] for j in real], [0] * len(real)  # not the agent-loop key format
            break
        sessions.append(f"{parts[0]}_{parts[1]}")
        outputs.append(int(parts[2]))
    session_ids, session_of = np.unique(np.asarray(sessions, dtype=object), return_inverse=True)
    if len(session_ids) == len(row_keys):
        return None
    order = np.lexsort((np.asarray(outputs, dtype=np.int64), session_of))  # by session, then output index
    last_of_session = np.r_[session_of[order][1:] != session_of[order][:-1], True]
    final = real[order[last_of_session]]  # one row per real session, sessions in id order
    owner = np.full(len(row_keys), -1, dtype=np.int64)
    owner[real] = session_of
    return final, owner


class TransferQueueReadError(RuntimeError):
    """TransferQueue itself failed to return fields (not a field it lacks: that comes back as no column)."""


def _get_fields(tq: Any, batch: Any, fields: list[str]) -> dict[str, list]:
    """The ``fields`` TransferQueue holds for the rows of ``batch``. A field it does not hold comes back as no column
    and is left out here, so the estimator names it with what is present; a failure of TransferQueue is raised with
    its cause, never taken for an absent field."""
    try:
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
    except Exception as exc:
        raise TransferQueueReadError(
            f"gdpo-verl: TransferQueue failed to return the reward fields {fields} of {len(batch.keys)} rows "
            f"(partition {batch.partition_id!r}): {exc!r}. The step cannot read its reward components."
        ) from exc
    held = set(data.keys())
    return {f: list(data[f]) for f in fields if f in held}


def fetch_components(tq: Any, batch: Any, keys: list[str]) -> dict[str, list]:
    """Reward components of ``batch`` rows from TransferQueue, in row order. A key found nowhere is left out, and
    every reward field present is listed, for the estimator's MissingRewardKeyError."""
    infos = []
    # verl's own field: a TransferQueue failure here is a real error, not an absent reward key
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
    for value in list(data["extra_fields"]) if "extra_fields" in set(data.keys()) else []:
        extra = reward_metrics.unwrap(value)
        info = extra.get("reward_extra_info", {}) if isinstance(extra, dict) else {}
        infos.append(info if isinstance(info, dict) else {})
    found = {k: [info.get(k) for info in infos] for k in keys if any(k in info for info in infos)}
    missing = [k for k in keys if k not in found]
    if missing:  # colocated reward-model mode stores the reward extra info as top-level fields
        for k, column in _get_fields(tq, batch, missing).items():
            found[k] = [reward_metrics.scalar(v) for v in column]
    for info in infos[:1]:
        for k in info:
            found.setdefault(k, [i.get(k) for i in infos])  # lets an error message list what is present
    return found


def _global_step(trainer: Any) -> int:
    """The step the trainer is on (weight schedules follow it); verl's V1 ``PPOTrainer`` keeps it in
    ``global_steps``."""
    if not hasattr(trainer, "global_steps"):
        raise verl_shapes.VerlShapeError(
            f"gdpo-verl: {type(trainer).__name__} has no attribute 'global_steps' (verl {verl_shapes.verl_version()}): "
            "the V1 trainer hook cannot tell which step this is, so a GDPO weight schedule would follow the wrong "
            "step. Use a verl this plugin supports (gdpo-verl doctor) or the legacy trainer (trainer.use_v1=false)."
        )
    return int(trainer.global_steps)


def _is_gdpo(config: Any) -> bool:
    return str(config.algorithm.adv_estimator) in ("gdpo", "AdvantageEstimator.GDPO")


def _wrap(original):
    @functools.wraps(original)
    def _compute_advantage(self, batch, metrics):
        if not _is_gdpo(self.config):
            out = original(self, batch, metrics)
            reward_metrics.log_v1(MODULE, batch, metrics)  # per-reward figures for any estimator
            return out
        import sys

        tq = sys.modules[MODULE].tq
        keys = list(self.config.algorithm.get("gdpo_reward_keys") or [])
        ctx = BatchContext(
            fetch_components(tq, batch, keys) if keys else {},
            session_layout(list(batch.keys), padding_rows(batch.tags)),
            _global_step(self),
        )
        token = _current.set(ctx)
        metrics_bridge.pop()  # nothing stale from an earlier failed step
        try:
            out = original(self, batch, metrics)
        finally:
            _current.reset(token)
        metrics.update(metrics_bridge.pop())
        return out

    return _compute_advantage


def _patch(module: Any) -> None:
    verl_shapes.wrap_once(module.PPOTrainer, "_compute_advantage", _wrap)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.V1_ADVANTAGE, _patch)
