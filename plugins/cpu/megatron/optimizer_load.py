"""Loading a checkpoint into a fresh distributed optimizer without Apex or Transformer Engine.

When neither Apex nor Transformer Engine is installed (the CPU install), megatron-core's distributed optimizer runs
a plain ``torch.optim`` optimizer and reads the step count from its per-parameter state
(``DistributedOptimizer.state_dict``: ``assert len(steps) == 1``). A freshly built optimizer has no state yet, so
building the sharded state dict to *load* a checkpoint into (verl's resume path) fails on that assertion.

Before a loading ``sharded_state_dict`` on an optimizer without state, the state is created with megatron-core's
own helper for that purpose (``_init_optimizer_states_with_dummy_values``: one step on zero gradients), run with
learning rate and weight decay set to 0 so that no parameter moves; the checkpoint then overwrites that state.
"""

from __future__ import annotations

import functools
import inspect
from types import ModuleType

from ...patching import is_patched, mark
from .pins import attribute, has_parameters, qualname, source_has

MODULE = "megatron.core.optimizer.distrib_optimizer"
STEP_CHECK = "assert len(steps) == 1"


def init_state_without_moving(optimizer_wrapper) -> None:
    """Create the inner optimizer's state with one zero-gradient step at lr = weight decay = 0, then restore both."""
    groups = optimizer_wrapper.optimizer.param_groups
    saved = [(g.get("lr"), g.get("weight_decay")) for g in groups]
    for g in groups:
        g["lr"], g["weight_decay"] = 0.0, 0.0
    try:
        optimizer_wrapper._init_optimizer_states_with_dummy_values()
    finally:
        for g, (lr, wd) in zip(groups, saved, strict=True):
            g["lr"], g["weight_decay"] = lr, wd


def patch(module: ModuleType) -> None:
    cls = attribute(module, "DistributedOptimizer", qualname(module, "DistributedOptimizer"))
    where = f"{module.__name__}.DistributedOptimizer.sharded_state_dict"
    original = attribute(cls, "sharded_state_dict", where)
    if is_patched(original):
        return
    if attribute(module, "HAVE_APEX_OR_TE", qualname(module, "HAVE_APEX_OR_TE")):
        return  # Apex / Transformer Engine optimizers keep their own step count: nothing to adjust
    has_parameters(original, ("is_loading",), where)
    source_has(cls.state_dict, (STEP_CHECK,), f"{module.__name__}.DistributedOptimizer.state_dict")
    attribute(cls, "_init_optimizer_states_with_dummy_values", f"{where} (its state initializer)")
    signature = inspect.signature(original)

    @functools.wraps(original)
    def sharded_state_dict(self, *args, **kwargs):
        if signature.bind(self, *args, **kwargs).arguments.get("is_loading") and not self.optimizer.state:
            init_state_without_moving(self)
        return original(self, *args, **kwargs)

    cls.sharded_state_dict = mark(sharded_state_dict)
