"""CPU training for verl: a ``cpu`` platform and a ``transformers`` rollout, only when asked for.

``install()`` runs in every process that imports verl (the plugin entry point). It stays cheap: it decides whether
CPU mode applies here, then arranges for each verl module concerned to be adjusted when verl itself imports it.

* Opt-in only: ``GDPO_VERL_CPU=1`` in the environment of every verl process (``gdpo-verl quickstart`` sets it; Ray
  workers inherit it from the driver). A host without an accelerator is never switched by itself: a CPU-only head
  node or reward worker of a GPU cluster keeps verl's own platform.
* verl must have every piece the patches change (checked by shape, whatever its version, by
  :mod:`.guard`); a missing one stops the run at verl's import of it, naming the piece.
"""

from __future__ import annotations

import logging
import os

from .mode import ENV, PROCESS_ENV, ROLLOUT_NAME, active

__all__ = ["ENV", "PROCESS_ENV", "ROLLOUT_NAME", "active", "install"]
logger = logging.getLogger("gdpo_verl")


def _register_platform(module) -> None:
    from .platform import PLATFORM_NAME, make_platform_class

    module.PlatformRegistry.register(platform=PLATFORM_NAME)(make_platform_class(module.PlatformBase))


def install() -> bool:
    """Enable CPU training in this process if it applies; returns whether it did."""
    if not active():
        return False
    from .guard import guard

    guard()
    from ..post_import import when_imported
    from . import patches as cpu_patches

    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    when_imported("verl.plugin.platform", _register_platform)
    for name, (module_name, _attr) in cpu_patches.PATCHES.items():
        when_imported(module_name, cpu_patches.APPLY[name])
    from . import megatron as cpu_megatron  # applied only if verl imports megatron / mbridge

    for name, (module_name, _attr) in cpu_megatron.PATCHES.items():
        when_imported(module_name, cpu_megatron.APPLY[name])
    logger.info("gdpo-verl: CPU training enabled (platform cpu, rollout %s)", ROLLOUT_NAME)
    return True
