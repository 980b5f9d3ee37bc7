"""Per-reward figures for estimators other than ``gdpo`` on verl's V1 trainer, so that a GRPO run with several reward
components logs ``gdpo/<key>/{mean,std,min,max}`` like a GDPO run and ``gdpo-verl analyze curves`` compares the two.

Logging only: nothing reaches the advantages. Every numeric key of the rows' ``reward_extra_info`` except ``score``
(verl logs that as ``critic/score/*``) is summarized over the step's rollouts (each session's final output for
multi-output sessions, as the GDPO metrics). A step whose components cannot be read logs
``gdpo/reward_metrics_unavailable`` = 1 and warns once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from gdpo_verl.reward_stats import per_key_stats

from .tq_rows import fetch_components, padding_rows, scalar, session_layout

logger = logging.getLogger("gdpo_verl")
_warned = False


def _number(value: Any) -> float | None:
    value = scalar(value)
    if value is None or isinstance(value, str):
        return None if value is None else _parse(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def component_metrics(components: dict[str, list], final_rows: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """``gdpo/<key>/{mean,std,min,max}`` for every component with at least one number (``score`` left out), over
    the rows that count (``final_rows``: each real session's final output), as the GDPO metrics."""
    keys = [
        key
        for key, values in components.items()
        if key != "score" and not any(isinstance(v, str) and _parse(v) is None for v in values)
    ]  # not verl's own score, nor a text field of the reward function
    if not keys:
        return {}
    columns = [[math.nan if (x := _number(v)) is None else x for v in components[key]] for key in keys]
    values = np.asarray(columns, dtype=np.float64).T
    return per_key_stats(keys, values if final_rows is None else values[final_rows[0]])


def log_v1(tq: Any, batch: Any, metrics: dict) -> None:
    """Add the per-reward figures of a V1 batch (``KVBatchMeta``, rows in TransferQueue ``tq``) to ``metrics``."""
    global _warned
    try:
        components = fetch_components(tq, batch, [])
        figures = component_metrics(components, session_layout(list(batch.keys), padding_rows(batch.tags)))
    except Exception as exc:  # noqa: BLE001 - logging must not stop training; the failure is counted and warned
        metrics["gdpo/reward_metrics_unavailable"] = 1.0
        if not _warned:
            logger.warning("gdpo-verl: per-reward metrics not logged for this estimator: %s", exc)
            _warned = True
        return
    metrics.update(figures)
