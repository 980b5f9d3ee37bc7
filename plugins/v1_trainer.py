"""V1 trainer hook (verl 0.9 default, ``trainer.use_v1=true``).

``PPOTrainer._compute_advantage`` fetches only uid/response_mask/rm_scores/... from TransferQueue, so the reward
components never reach the estimator. The wrapper fetches them (each row's ``extra_fields['reward_extra_info']``, or
top-level fields in colocated reward-model mode), exposes them and the rows' session layout to the estimator for the
duration of the call, then merges the estimator's metrics into the step's metrics dict.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from gdpo_verl_plugins import metrics_bridge, reward_metrics, verl_shapes

logger = logging.getLogger("gdpo_verl")
MODULE = verl_shapes.V1_ADVANTAGE.module


@dataclass(frozen=True)
class BatchContext:
    components: dict[str, list]  # reward key -> one value per row (None where a row lacks it)
    final_rows: tuple[np.ndarray, np.ndarray] | None  # (rows that are a session's final output, row -> final pos)
    step: int | None = None  # the trainer's global_steps (for weight schedules)


_current: contextvars.ContextVar[BatchContext | None] = contextvars.ContextVar("gdpo_verl_v1_batch", default=None)


def current() -> BatchContext | None:
    return _current.get()


def session_layout(row_keys: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows keyed ``{uid}_{session}_{output}``: the final output of each session, and each row's session. None when
    every session has one output (the common case)."""
    sessions, outputs = [], []
    for key in row_keys:
        parts = key.rsplit("_", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            return None  # not the agent-loop key format: one row per session
        sessions.append(f"{parts[0]}_{parts[1]}")
        outputs.append(int(parts[2]))
    session_ids, owner = np.unique(np.asarray(sessions, dtype=object), return_inverse=True)
    if len(session_ids) == len(row_keys):
        return None
    order = np.lexsort((np.asarray(outputs), owner))  # by session, then output index
    last_of_session = np.r_[owner[order][1:] != owner[order][:-1], True]
    final = order[last_of_session]  # one row per session, sessions in id order
    return final, owner


def _get_fields(tq: Any, batch: Any, fields: list[str]) -> dict[str, list]:
    """The ``fields`` TransferQueue holds for the rows of ``batch``; absent ones are left out (TransferQueue returns
    no column, or refuses, for a field it does not hold), so the estimator can name them with what is present."""
    try:
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
    except Exception as exc:  # noqa: BLE001 - the estimator reports the missing key with what is present
        logger.debug("gdpo-verl: fields %s not in TransferQueue: %s", fields, exc)
        return {}
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
            session_layout(list(batch.keys)),
            getattr(self, "global_steps", None),
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
