"""megatron-core's optimizer dtype checks accepting CPU tensors (spec item 7).

megatron-core sorts and checks tensors by comparing ``tensor.type()`` with the CUDA type names
(``'torch.cuda.BFloat16Tensor'``, ``'torch.cuda.FloatTensor'``), which CPU tensors never match:

* ``DistributedOptimizer.__init__`` sorts its parameters into 16-bit and fp32 groups (``TypeError`` otherwise);
* ``clip_grad_by_total_norm_fp32`` asserts each gradient is ``'torch.cuda.FloatTensor'`` (it is imported by name into
  ``megatron.core.optimizer.optimizer``, so that reference is wrapped too).

While one of those calls runs, and only for the tensors it is given (the optimizer's parameters, the parameters'
gradients), ``tensor.type()`` answers with the CUDA name of the CPU type; the per-tensor override is removed when the
call returns or raises.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterable, Iterator
from types import ModuleType

import torch

from ...patching import is_patched, mark
from .pins import attribute, has_parameters, qualname, source_has

MODULE = "megatron.core.optimizer.distrib_optimizer"
CLIP_MODULES = ("megatron.core.optimizer.clip_grads", "megatron.core.optimizer.optimizer")
CHECK = "model_param.type() in ['torch.cuda.HalfTensor', 'torch.cuda.BFloat16Tensor']"
CLIP_CHECK = "param.grad.type() == 'torch.cuda.FloatTensor'"


def cuda_type_name(tensor: torch.Tensor) -> str:
    """``'torch.BFloat16Tensor'`` -> ``'torch.cuda.BFloat16Tensor'`` (CUDA names are kept)."""
    name = torch.Tensor.type(tensor)
    return name if name.startswith("torch.cuda.") else "torch.cuda." + name.removeprefix("torch.")


def _type(tensor: torch.Tensor, dtype=None, *args, **kwargs):
    if dtype is None and not args and not kwargs:
        return cuda_type_name(tensor)
    return torch.Tensor.type(tensor, dtype, *args, **kwargs)


@contextlib.contextmanager
def cuda_type_names(tensors: Iterable[torch.Tensor]) -> Iterator[None]:
    """Inside the block, each given CPU tensor's ``type()`` (no arguments) answers with its CUDA type name."""
    changed = [t for t in tensors if t is not None and t.device.type == "cpu" and "type" not in vars(t)]
    for t in changed:
        t.type = functools.partial(_type, t)
    try:
        yield
    finally:
        for t in changed:
            vars(t).pop("type", None)


def patch(module: ModuleType) -> None:
    """``DistributedOptimizer.__init__``: the optimizer's parameters carry CUDA type names while it is built."""
    cls = attribute(module, "DistributedOptimizer", qualname(module, "DistributedOptimizer"))
    where = f"{module.__name__}.DistributedOptimizer.__init__"
    original = cls.__init__
    if is_patched(original):
        return
    has_parameters(original, ("optimizer",), where)
    source_has(cls, (CHECK,), f"{module.__name__}.DistributedOptimizer")
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        optimizer = signature.bind(self, *args, **kwargs).arguments["optimizer"]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        with cuda_type_names(params):
            original(self, *args, **kwargs)

    cls.__init__ = mark(__init__)


def patch_clip(module: ModuleType) -> None:
    """``clip_grad_by_total_norm_fp32`` (where defined and where imported): gradients carry CUDA type names."""
    where = qualname(module, "clip_grad_by_total_norm_fp32")
    original = attribute(module, "clip_grad_by_total_norm_fp32", where)
    if is_patched(original):
        return
    has_parameters(original, ("parameters",), where)
    source_has(original, (CLIP_CHECK,), where)
    signature = inspect.signature(original)

    @functools.wraps(original)
    def clip_grad_by_total_norm_fp32(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        params = bound.arguments["parameters"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        bound.arguments["parameters"] = params
        with cuda_type_names(p.grad for p in params):
            return original(*bound.args, **bound.kwargs)

    module.clip_grad_by_total_norm_fp32 = mark(clip_grad_by_total_norm_fp32)
