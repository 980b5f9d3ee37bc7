"""The rows of a V1 batch as TransferQueue holds them: their reward components, session layout and padding flags.

verl's V1 trainer keeps each row in TransferQueue under a key ``{uid}_{session}_{output}``; the reward function's
extra values are in the row's ``extra_fields['reward_extra_info']`` (or top-level fields in colocated reward-model
mode); verl's ``_balance_batch`` appends synthetic rows tagged ``is_padding``. The estimator, the per-reward figures
and the rollout dump read a batch through this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gdpo_verl.row_keys import split_v1_key


class TransferQueueReadError(RuntimeError):
    """TransferQueue itself failed to return fields (not a field it lacks: that comes back as no column)."""


def unwrap(value: Any) -> Any:
    """A TransferQueue cell without its tensordict wrapper (``NonTensorData``); any other value as it is (the
    ``.data`` of a numpy scalar is its raw buffer, not a wrapped value)."""
    if type(value).__module__.partition(".")[0] == "tensordict" and hasattr(value, "data"):
        return value.data
    return value


def scalar(value: Any) -> Any:
    """A TransferQueue cell as a plain value: a tensor gives its last element as a float (None when empty)."""
    value = unwrap(value)
    if hasattr(value, "numel"):
        return float(value.reshape(-1)[-1]) if value.numel() else None
    return value


def padding_rows(tags: list[dict]) -> np.ndarray:
    """Which rows verl added to make the batch divisible (``padding_utils.upsample_batch_to_divisible_size`` tags
    them ``is_padding``): copies of row 0's sample that are no rollouts and must count nowhere."""
    return np.array([bool(tag.get("is_padding", False)) for tag in tags], dtype=bool)


def session_layout(row_keys: list[str], padding: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows that count and where each row finds its value: ``(final, owner)`` with ``final`` the final output of
    each real session and ``owner[row]`` its session's position in ``final``, -1 for a padding row. None when every
    row is a real one-output session (the common case)."""
    padding = np.zeros(len(row_keys), dtype=bool) if padding is None else np.asarray(padding, dtype=bool)
    real = np.flatnonzero(~padding)
    parsed = [split_v1_key(row_keys[i]) for i in real]
    if all(parsed):
        sessions, outputs = [p[1] for p in parsed], [p[2] for p in parsed]
    else:  # not the agent-loop key format: one row per session
        sessions, outputs = [row_keys[i] for i in real], [0] * len(real)
    session_ids, session_of = np.unique(np.asarray(sessions, dtype=object), return_inverse=True)
    if len(session_ids) == len(row_keys):
        return None
    order = np.lexsort((np.asarray(outputs, dtype=np.int64), session_of))  # by session, then output index
    last_of_session = np.r_[session_of[order][1:] != session_of[order][:-1], True]
    final = real[order[last_of_session]]  # one row per real session, sessions in id order
    owner = np.full(len(row_keys), -1, dtype=np.int64)
    owner[real] = session_of
    return final, owner


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
        extra = unwrap(value)
        info = extra.get("reward_extra_info", {}) if isinstance(extra, dict) else {}
        infos.append(info if isinstance(info, dict) else {})
    found = {k: [info.get(k) for info in infos] for k in keys if any(k in info for info in infos)}
    missing = [k for k in keys if k not in found]
    if missing:  # colocated reward-model mode stores the reward extra info as top-level fields
        for k, column in _get_fields(tq, batch, missing).items():
            found[k] = [scalar(v) for v in column]
    for info in infos[:1]:
        for k in info:
            found.setdefault(k, [i.get(k) for i in infos])  # lets an error message list what is present
    return found
