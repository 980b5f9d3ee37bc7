"""Legacy trainer hook (``trainer.use_v1=false``, ``RayPPOTrainer``): log the estimator's metrics.

The legacy trainer already hands the reward components to a `gdpo` estimator (``non_tensor_batch``), but its
``fit`` keeps the metrics dict to itself. ``fit`` calls ``compute_timing_metrics`` (a name of its module) after its
own GDPO metric loop, so wrapping that name merges our metrics last: ours win where names meet.
"""

from __future__ import annotations

import functools
from typing import Any

from gdpo_verl_plugins import metrics_bridge
from gdpo_verl_plugins.post_import import when_imported
from gdpo_verl_plugins.verl_compat import LEGACY_VERL, supported

MODULE = "verl.trainer.ppo.ray_trainer"
HOOKED = "compute_timing_metrics"


def _wrap(original):
    @functools.wraps(original)
    def compute_timing_metrics(*args, **kwargs):
        out = dict(original(*args, **kwargs))
        out.update(metrics_bridge.pop())
        return out

    compute_timing_metrics.__gdpo_verl_wrapped__ = True
    return compute_timing_metrics


def _patch(module: Any) -> None:
    if not supported("the legacy trainer metrics hook", LEGACY_VERL):
        return
    current = getattr(module, HOOKED)
    if not getattr(current, "__gdpo_verl_wrapped__", False):
        setattr(module, HOOKED, _wrap(current))


def install() -> None:
    when_imported(MODULE, _patch)
