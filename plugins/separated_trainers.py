"""verl's one-step-off and fully-async trainers (``verl.experimental``): log the estimator's gdpo/* metrics.

Both subclass ``SeparateRayPPOTrainer``, whose ``_fit_compute_advantage(batch)`` runs ``compute_advantage`` (our
estimator, with the reward components in ``non_tensor_batch`` as on the legacy trainer) and gathers the step's
metrics in ``self.metrics``; wrapping it merges ours there.
"""

from __future__ import annotations

import functools
from typing import Any

from . import metrics_bridge, verl_shapes
from .patching import wrap_once


def _wrap(original):
    @functools.wraps(original)
    def _fit_compute_advantage(self, batch, *args, **kwargs):
        with metrics_bridge.collect() as figures:
            out = original(self, batch, *args, **kwargs)
        self.metrics.update(figures)
        return out

    return _fit_compute_advantage


def _patch(module: Any) -> None:
    wrap_once(module.SeparateRayPPOTrainer, "_fit_compute_advantage", _wrap)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.SEPARATED_METRICS, _patch)
