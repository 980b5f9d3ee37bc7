"""CUDA device references inside single megatron-core / mbridge modules, answered for the CPU (spec items 2, 3 and 4).

megatron-core writes ``torch.cuda.current_device()``, ``device="cuda"``, ``torch.cuda.synchronize()`` and
``torch.cuda.empty_cache()`` directly into the modules a CPU run reaches. For each module listed in :data:`MODULES`,
its module-level name ``torch`` is replaced by :class:`CpuTorch`, a thin view of ``torch`` that differs in two
places only:

* ``torch.cuda`` is the platform's CPU stand-in (``current_device()`` is the CPU device; ``synchronize``,
  ``empty_cache``, streams and events are no-ops; RNG calls act on the CPU generator); any other ``torch.cuda``
  attribute is the real one;
* the tensor factories (``zeros``, ``ones``, ``empty``, ``tensor``, ...) create on the CPU when asked for a CUDA
  device.

Nothing else changes: other modules, other threads and ``torch`` itself are untouched, and ``module.torch`` shows
what was swapped. This is less fragile than wrapping each function: a new CUDA call in a listed module is covered,
and a module that no longer references CUDA at all stops the run (its shape changed) instead of being patched blind.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch

from ...patching import is_patched, mark
from ..platform import DEVICE_MODULE
from .pins import ShapeChanged, attribute, qualname, source_has

# module -> a source fragment that shows the CUDA assumption is still there. The modules a CPU training step reaches
# (model construction, DDP buffers, distributed optimizer, pipeline schedules, attention, weight export, checkpoints).
_CURRENT = "torch.cuda.current_device()"
MODULES: dict[str, str] = {
    "megatron.core.dist_checkpointing.strategies.async_utils": _CURRENT,
    "megatron.core.dist_checkpointing.strategies.filesystem_async": "torch.cuda.synchronize()",
    "megatron.core.dist_checkpointing.strategies.fully_parallel": "torch.cuda.synchronize()",
    "megatron.core.dist_checkpointing.strategies.state_dict_saver": "device='cuda'",
    "megatron.core.dist_checkpointing.tensor_aware_state_dict": "torch.cuda.synchronize()",
    "megatron.core.distributed.distributed_data_parallel": _CURRENT,
    "megatron.core.distributed.param_and_grad_buffer": _CURRENT,
    "megatron.core.models.common.embeddings.rotary_pos_embedding": _CURRENT,
    "megatron.core.models.gpt.gpt_model": _CURRENT,
    "megatron.core.optimizer.clip_grads": "device='cuda'",
    "megatron.core.optimizer.distrib_optimizer": _CURRENT,
    "megatron.core.optimizer.grad_scaler": _CURRENT,
    "megatron.core.optimizer.optimizer": _CURRENT,
    "megatron.core.parallel_state": _CURRENT,
    "megatron.core.pipeline_parallel.p2p_communication": "torch.cuda.synchronize()",
    "megatron.core.pipeline_parallel.schedules": 'device="cuda"',
    "megatron.core.pipeline_parallel.utils": 'device="cuda"',
    "megatron.core.rerun_state_machine": _CURRENT,
    "megatron.core.tensor_parallel.data": _CURRENT,
    "megatron.core.tensor_parallel.layers": _CURRENT,
    "megatron.core.tensor_parallel.mappings": _CURRENT,
    "megatron.core.tensor_parallel.utils": _CURRENT,
    "megatron.core.timers": _CURRENT,
    "megatron.core.transformer.attention": _CURRENT,
    "megatron.core.transformer.dot_product_attention": _CURRENT,
    "megatron.core.transformer.module": _CURRENT,
    "megatron.core.transformer.transformer_layer": _CURRENT,
    "megatron.core.transformer.utils": 'device="cuda"',
    "megatron.core.utils": _CURRENT,
    "mbridge.core.bridge": _CURRENT,
    "mbridge.core.util": _CURRENT,
}
FACTORIES = (
    "zeros", "ones", "empty", "full", "tensor", "as_tensor", "arange", "rand", "randn", "randint",
    "zeros_like", "ones_like", "empty_like", "full_like",
)  # fmt: skip


def cpu_device(device: Any) -> Any:
    """``device`` with any CUDA device (``"cuda"``, ``"cuda:0"``, ``torch.device("cuda")``, an index) as the CPU."""
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cpu")
    if isinstance(device, str) and device.split(":")[0] == "cuda":
        return torch.device("cpu")
    if isinstance(device, torch.device) and device.type == "cuda":
        return torch.device("cpu")
    return device


def _on_cpu(factory):
    @functools.wraps(factory)
    def create(*args, **kwargs):
        if "device" in kwargs:
            kwargs["device"] = cpu_device(kwargs["device"])
        return factory(*args, **kwargs)

    return create


class _CpuCuda(ModuleType):
    """``torch.cuda`` as one megatron-core module sees it: the CPU stand-in first, the real module behind it."""

    def __init__(self) -> None:
        super().__init__("torch.cuda", "torch.cuda seen from a megatron-core module on CPU (gdpo-verl)")

    def __getattr__(self, name: str) -> Any:
        if hasattr(DEVICE_MODULE, name):
            return getattr(DEVICE_MODULE, name)
        return getattr(torch.cuda, name)


class CpuTorch(ModuleType):
    """``torch`` as one megatron-core module sees it on CPU (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__("torch", "torch seen from a megatron-core module on CPU (gdpo-verl)")
        self.cuda = _CpuCuda()
        for name in FACTORIES:
            setattr(self, name, _on_cpu(getattr(torch, name)))
        mark(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


CPU_TORCH = CpuTorch()


def swap_torch(module: ModuleType, fragment: str) -> None:
    """Give ``module`` the CPU view of ``torch``, if it still holds the real one and the CUDA call is still there."""
    current = attribute(module, "torch", qualname(module, "torch"))
    if is_patched(current):
        return
    if current is not torch:
        raise ShapeChanged(f"gdpo-verl CPU Megatron: {module.__name__}.torch is {current!r}, not torch")
    source_has(module, (fragment,), module.__name__)
    module.torch = CPU_TORCH


def patch(module: ModuleType) -> None:
    swap_torch(module, MODULES[module.__name__])
