"""Legacy trainer hook (``trainer.use_v1=false``, ``RayPPOTrainer``): log the estimator's metrics with the step's.

The legacy trainer already hands the reward components to a `gdpo` estimator (``non_tensor_batch``), but its
``fit`` keeps the step's metrics dict to itself and logs it with ``Tracking.log``. Two wrappers: verl's
``compute_advantage`` collects the estimator's figures (a fresh collection each step), and ``Tracking.log`` adds them
to that step's metrics, last, so ours win where names meet (verl's own ``gdpo/<key>/mean`` loop included).
When ``compute_advantage`` runs inside the V1 or separated trainer's hook, that hook logs the figures instead.
"""

from __future__ import annotations

import functools
from typing import Any

from . import metrics_bridge, verl_shapes
from .patching import wrap_once

_step_figures: dict[str, float] = {}  # the figures of the last legacy advantage step, until the step is logged


def _wrap_advantage(original):
    @functools.wraps(original)
    def compute_advantage(*args, **kwargs):
        if metrics_bridge.collecting():  # a V1 / separated trainer hook logs them
            return original(*args, **kwargs)
        _step_figures.clear()
        with metrics_bridge.collect() as figures:
            out = original(*args, **kwargs)
        _step_figures.update(figures)
        return out

    return compute_advantage


def _wrap_log(original):
    @functools.wraps(original)
    def log(self, data, step, *args, **kwargs):
        if _step_figures:
            data = {**data, **_step_figures}
            _step_figures.clear()
        return original(self, data, step, *args, **kwargs)

    return log


def _patch_advantage(module: Any) -> None:
    wrap_once(module, "compute_advantage", _wrap_advantage)


def _patch_log(module: Any) -> None:
    wrap_once(module.Tracking, "log", _wrap_log)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.LEGACY_ADVANTAGE, _patch_advantage)
    verl_shapes.when_shaped(verl_shapes.STEP_LOG, _patch_log)
