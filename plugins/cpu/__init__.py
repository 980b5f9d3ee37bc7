"""CPU training for verl: a ``cpu`` platform and a ``transformers`` rollout, only when asked for.

``install()`` runs in every process that imports verl (the plugin entry point). It stays cheap: it decides whether
CPU mode applies here, then arranges for each verl module concerned to be adjusted when verl itself imports it.

* Opt-in only: ``GDPO_VERL_CPU=1`` in the environment of every verl process (``gdpo-verl quickstart`` sets it; Ray
  workers inherit it from the driver). A host without an accelerator is never switched by itself: a CPU-only head
  node or reward worker of a GPU cluster keeps verl's own platform.
* Only for verl :data:`SUPPORTED_VERL`; another version gets one WARNING and no change.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("gdpo_verl")

SUPPORTED_VERL = "0.9.1"  # the verl release whose internals the CPU patches were written against
ENV = "GDPO_VERL_CPU"
ROLLOUT_NAME = "hf_cpu"  # actor_rollout_ref.rollout.name for the transformers rollout
# Environment the CPU run needs in every verl process (set only where the user has not set it).
PROCESS_ENV = {
    "VERL_PLATFORM": "cpu",  # pick our platform, whatever the probing order
    "VERL_ENGINE_DEVICE": "cuda",  # verl registers its FSDP engines for cuda/npu only; they run on a CPU mesh
}
_warned = False


def active() -> bool:
    """Whether CPU mode was asked for in this process (``GDPO_VERL_CPU=1``)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def verl_version() -> str | None:
    mod = sys.modules.get("verl")
    found = getattr(mod, "__version__", None)
    if found:
        return str(found)
    try:
        from importlib.metadata import version

        return version("verl")
    except Exception:  # noqa: BLE001
        return None


def version_ok() -> bool:
    """True for the supported verl; otherwise one WARNING per process."""
    global _warned
    found = verl_version()
    if found == SUPPORTED_VERL:
        return True
    if not _warned:
        _warned = True
        logger.warning(
            "gdpo-verl: CPU training not enabled: written for verl %s, found %s (set %s=0 to silence)",
            SUPPORTED_VERL,
            found,
            ENV,
        )
    return False


def _register_platform(module) -> None:
    from gdpo_verl_plugins.cpu.platform import PLATFORM_NAME, make_platform_class

    module.PlatformRegistry.register(platform=PLATFORM_NAME)(make_platform_class(module.PlatformBase))


def install() -> bool:
    """Enable CPU training in this process if it applies; returns whether it did."""
    if not active() or not version_ok():
        return False
    from gdpo_verl_plugins.cpu import patches as cpu_patches
    from gdpo_verl_plugins.post_import import when_imported

    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    when_imported("verl.plugin.platform", _register_platform)
    for name, (module_name, _attr) in cpu_patches.PATCHES.items():
        when_imported(module_name, cpu_patches.APPLY[name])
    from gdpo_verl_plugins.cpu import megatron as cpu_megatron  # applied only if verl imports megatron / mbridge

    for name, (module_name, _attr) in cpu_megatron.PATCHES.items():
        when_imported(module_name, cpu_megatron.APPLY[name])
    logger.info("gdpo-verl: CPU training enabled (platform cpu, rollout %s)", ROLLOUT_NAME)
    return True
