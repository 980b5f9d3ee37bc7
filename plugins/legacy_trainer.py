"""Legacy trainer hook (``trainer.use_v1=false``, ``RayPPOTrainer``): log the estimator's metrics.

The legacy trainer already hands the reward components to a `gdpo` estimator (``non_tensor_batch``), but its
``fit`` keeps the metrics dict to itself. ``fit`` calls ``compute_timing_metrics`` (a name of its module) after its
own GDPO metric loop, so wrapping that name merges our metrics last: ours win where names meet.
"""

from __future__ import annotations

import functools
from typing import Any

from . import metrics_bridge, verl_shapes

MODULE = verl_shapes.LEGACY_METRICS.module
HOOKED = verl_shapes.LEGACY_METRICS.shapes[0].attr


def _wrap(original):
    @functools.wraps(original)
    def compute_timing_metrics(*args, **kwargs):
        out = dict(original(*args, **kwargs))
        out.update(metrics_bridge.pop())
        return out

    return compute_timing_metrics


def _patch(module: Any) -> None:
    verl_shapes.wrap_once(module, HOOKED, _wrap)


def install() -> None:
    verl_shapes.when_shaped(verl_shapes.LEGACY_METRICS, _patch)
