"""megatron-core's tensor-parallel RNG tracker on CPU generators (spec item 1).

``megatron.core.tensor_parallel.random`` keeps one RNG state per parallel region (data-, tensor-, expert-parallel)
and swaps them in and out of the CUDA generator (``torch.cuda.get_rng_state``, ``torch.cuda.manual_seed`` and two
private helpers that reach ``torch.cuda.default_generators``). verl calls ``model_parallel_cuda_manual_seed`` when it
builds the Megatron model. On CPU the same states live in the CPU generator: the module sees the CPU view of
``torch`` (:mod:`.device`) and its two helpers read and write the CPU generator's state.

With the CPU generator shared by the "default" and the forked regions, megatron-core logs a harmless
"CPU RNG state changed within GPU RNG context" warning a few times per run.
"""

from __future__ import annotations

import functools
from types import ModuleType

import torch

from ...patching import is_patched, mark
from .device import swap_torch
from .pins import attribute, has_parameters, qualname, source_has

MODULE = "megatron.core.tensor_parallel.random"


def _cpu_get_rng_state(original):
    @functools.wraps(original)
    def _get_cuda_rng_state(device=None, clone: bool = False, graph_safe: bool = False) -> torch.Tensor:
        state = torch.get_rng_state()
        return state.clone() if clone else state

    return mark(_get_cuda_rng_state)


def _cpu_set_rng_state(original):
    @functools.wraps(original)
    def _set_cuda_rng_state(new_state: torch.Tensor, device=-1, graph_safe: bool = False) -> None:
        torch.set_rng_state(new_state)

    return mark(_set_cuda_rng_state)


def patch(module: ModuleType) -> None:
    for name in ("_get_cuda_rng_state", "_set_cuda_rng_state"):
        fn = attribute(module, name, qualname(module, name))
        if not is_patched(fn):
            has_parameters(fn, ("device", "graph_safe"), qualname(module, name))
    tracker = attribute(module, "CudaRNGStatesTracker", qualname(module, "CudaRNGStatesTracker"))
    source_has(tracker, ("torch.cuda.get_rng_state()", "torch.cuda.manual_seed(seed)"), tracker.__qualname__)
    if not is_patched(module._get_cuda_rng_state):
        module._get_cuda_rng_state = _cpu_get_rng_state(module._get_cuda_rng_state)
    if not is_patched(module._set_cuda_rng_state):
        module._set_cuda_rng_state = _cpu_set_rng_state(module._set_cuda_rng_state)
    swap_torch(module, "torch.cuda.manual_seed(")
