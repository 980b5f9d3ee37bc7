"""The few changes to verl internals that CPU training needs, each small, named and applied at verl's own import.

Every patch names the verl attribute it touches in :data:`PATCHES` (tests/test_cpu_patches.py checks that each one is
still there, with the shape it was written for, in the supported verl).
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType

from ..patching import wrap_once
from .mode import ROLLOUT_NAME

logger = logging.getLogger("gdpo_verl")

# patch name -> (verl module, attribute it changes)
PATCHES: dict[str, tuple[str, str]] = {
    "gloo_backend": ("verl.utils.distributed", "initialize_global_process_group_ray"),
    "rollout_class": ("verl.workers.rollout.base", "_ROLLOUT_REGISTRY"),
    "rollout_replica": ("verl.workers.rollout.replica", "RolloutReplicaRegistry"),
    "replay_poll": ("verl.trainer.ppo.v1.replay_buffer", "ReplayBuffer"),
    "fsdp_offload_pin": ("verl.workers.engine.fsdp.transformer_impl", "CPUOffloadPolicy"),
}
ROLLOUT_FQN = "gdpo_verl_plugins.cpu.rollout.HFServerAdapter"
# The V1 trainer polls TransferQueue every 2 s for finished rollouts; a tiny CPU step takes ~1 s of work.
POLL_INTERVAL_S = 0.2


def dedupe_backend(backend: str | None) -> str | None:
    """verl builds ``cpu:gloo,<device>:<backend>``; on CPU that is ``cpu:gloo,cpu:gloo``, which torch rejects."""
    if not backend:
        return backend
    parts = list(dict.fromkeys(p.strip() for p in backend.split(",") if p.strip()))
    return ",".join(parts)


def patch_gloo_backend(module: ModuleType) -> None:
    """``initialize_global_process_group_ray``: pass a de-duplicated backend string."""

    def wrap(original):
        @functools.wraps(original)
        def initialize_global_process_group_ray(timeout_second=None, backend=None):
            if backend is None:
                backend = f"cpu:gloo,{module.get_device_name()}:{module.get_nccl_backend()}"
            return original(timeout_second=timeout_second, backend=dedupe_backend(backend))

        return initialize_global_process_group_ray

    wrap_once(module, "initialize_global_process_group_ray", wrap)


def patch_rollout_class(module: ModuleType) -> None:
    """``get_rollout_class(name)`` reads the private ``_ROLLOUT_REGISTRY``: add the CPU rollout to it."""
    module._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = ROLLOUT_FQN


def patch_rollout_replica(module: ModuleType) -> None:
    """Public registry, imported lazily: register the CPU replica under the rollout name."""

    def _load():
        from .rollout import HFReplica

        return HFReplica

    module.RolloutReplicaRegistry.register(ROLLOUT_NAME, _load)


def patch_replay_poll(module: ModuleType) -> None:
    """``ReplayBuffer(poll_interval=2.0)``: poll every :data:`POLL_INTERVAL_S` unless a caller passes a value."""

    def wrap(original):
        @functools.wraps(original)
        def __init__(self, *args, poll_interval: float = POLL_INTERVAL_S, **kwargs):
            original(self, *args, poll_interval=poll_interval, **kwargs)

        return __init__

    wrap_once(module.ReplayBuffer, "__init__", wrap)


def patch_fsdp_offload_pin(module: ModuleType) -> None:
    """FSDP2 offload (always on for the forward-only reference model) asks for pinned memory, which needs an
    accelerator: on CPU the parameters already live in host memory, so offload without pinning."""
    if module.CPUOffloadPolicy is None:  # a torch without FSDP2 offload: nothing to adjust
        return

    def wrap(original):
        def cpu_offload_policy(*args, **kwargs):
            kwargs["pin_memory"] = False
            return original(*args, **kwargs)

        return cpu_offload_policy

    wrap_once(module, "CPUOffloadPolicy", wrap)


APPLY = {
    "gloo_backend": patch_gloo_backend,
    "rollout_class": patch_rollout_class,
    "rollout_replica": patch_rollout_replica,
    "replay_poll": patch_replay_poll,
    "fsdp_offload_pin": patch_fsdp_offload_pin,
}
