"""V1 trainer hook (verl 0.9 default, ``trainer.use_v1=true``).

``PPOTrainer._compute_advantage`` fetches only uid/response_mask/rm_scores/... from TransferQueue, so the reward
components never reach the estimator. The wrapper reads them (:mod:`.tq_rows`), exposes them, the rows' session
layout and verl's padding rows to the estimator for the duration of the call, then merges the estimator's metrics
into the step's metrics dict.
"""

from __future__ import annotations

import contextvars
import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import metrics_bridge, reward_metrics, verl_shapes
from .patching import wrap_once
from .tq_rows import fetch_components, padding_rows, session_layout

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
            reward_metrics.log_v1(sys.modules[MODULE].tq, batch, metrics)  # per-reward figures for any estimator
            return out
        tq = sys.modules[MODULE].tq
        keys = list(self.config.algorithm.get("gdpo_reward_keys") or [])
        ctx = BatchContext(
            fetch_components(tq, batch, keys) if keys else {},
            session_layout(list(batch.keys), padding_rows(batch.tags)),
            _global_step(self),
        )
        token = _current.set(ctx)
        try:
            with metrics_bridge.collect() as figures:
                out = original(self, batch, metrics)
        finally:
            _current.reset(token)
        metrics.update(figures)
        return out

    return _compute_advantage


def _patch(module: Any) -> None:
    wrap_once(module.PPOTrainer, "_compute_advantage", _wrap)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.V1_ADVANTAGE, _patch)
