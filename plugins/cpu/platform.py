"""A ``cpu`` platform for verl's public platform registry (``verl.plugin.platform.PlatformRegistry``).

verl asks its platform for the device name, the ``torch.<device>`` module, the collective backend and the Ray
resource name. On CPU: device ``cpu``, a ``torch.cuda`` stand-in (:data:`DEVICE_MODULE`) whose memory and stream calls
are harmless no-ops, collectives over ``gloo``, and Ray resource ``GPU`` (the run gives Ray fake GPUs with
``+ray_kwargs.ray_init.num_gpus=N``: verl's resource pools always ask for accelerators).
"""

from __future__ import annotations

import contextlib
import os
import random
from types import ModuleType
from typing import Any

import torch

from .mode import active

PLATFORM_NAME = "cpu"


class _Stream:
    """Stands in for ``torch.cuda.Stream``: work on CPU is synchronous, so there is nothing to wait on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_stream(self, other: Any) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def record_event(self, event: Any = None) -> _Event:
        return event or _Event()


class _Event:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass

    def wait(self, stream: Any = None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: Any) -> float:
        return 0.0


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


def _none(*args: Any, **kwargs: Any) -> None:
    return None


def _mem_get_info(*args: Any, **kwargs: Any) -> tuple[int, int]:
    """(free, total) bytes of host memory; verl uses it only for logging and cache-size heuristics."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available), int(vm.total)
    except ImportError:  # pragma: no cover - psutil comes with ray
        return 0, 0


def _build_device_module() -> ModuleType:
    """A module with the ``torch.cuda`` functions verl calls, acting on the CPU."""
    mod = ModuleType("gdpo_verl_plugins.cpu.device")
    mod.__doc__ = "torch.cuda stand-in for verl on CPU"
    table: dict[str, Any] = {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "current_device": lambda: torch.device("cpu"),
        "set_device": _none,
        "synchronize": _none,
        "empty_cache": _none,
        "ipc_collect": _none,
        "set_per_process_memory_fraction": _none,
        "reset_peak_memory_stats": _none,
        "memory_allocated": _zero,
        "memory_reserved": _zero,
        "max_memory_allocated": _zero,
        "max_memory_reserved": _zero,
        "mem_get_info": _mem_get_info,
        "get_device_name": lambda *a, **k: "cpu",
        "get_rng_state": lambda *a, **k: torch.get_rng_state(),
        "set_rng_state": lambda state, *a, **k: torch.set_rng_state(state),
        "manual_seed": torch.manual_seed,
        "manual_seed_all": torch.manual_seed,
        "Stream": _Stream,
        "Event": _Event,
        "current_stream": lambda *a, **k: _Stream(),
        "default_stream": lambda *a, **k: _Stream(),
        "stream": lambda *a, **k: contextlib.nullcontext(),
        "is_bf16_supported": lambda *a, **k: True,
    }
    for name, fn in table.items():
        setattr(mod, name, fn)
    return mod


DEVICE_MODULE = _build_device_module()


def make_platform_class(base: type) -> type:
    """Build the platform class on verl's ``PlatformBase`` (passed in so this module imports no verl)."""

    class PlatformCPU(base):  # type: ignore[misc, valid-type]
        """verl on a machine without an accelerator (gdpo-verl plugin)."""

        device_name = property(lambda self: "cpu")
        vendor_name = property(lambda self: "cpu")
        device_module = property(lambda self: DEVICE_MODULE)

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check: bool = False) -> bool:
            return active()

        def current_device(self) -> Any:
            return torch.device("cpu")  # `tensor.to(current_device())` must land on the CPU, not cuda:0

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            pass

        def synchronize(self, device_index: int | None = None) -> None:
            pass

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)
            random.seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            self.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            pass

        def empty_cache(self) -> None:
            pass

        def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            return "CUDA_VISIBLE_DEVICES"  # Ray sets it for its (fake) GPUs; harmless on CPU

        @contextlib.contextmanager
        def nvtx_range(self, msg: str):
            yield

        def profiler_start(self) -> None:
            pass

        def profiler_stop(self) -> None:
            pass

        def ray_resource_name(self) -> str:
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self) -> Any:
            return None

        def rollout_env_vars(self) -> dict[str, str]:
            return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}

    return PlatformCPU
