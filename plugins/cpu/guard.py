"""CPU mode asked for (``GDPO_VERL_CPU=1``): every verl module a CPU patch changes is checked by shape when verl
imports it, and a missing piece stops the run naming it (the hook guards of :mod:`..verl_shapes`, required)."""

from __future__ import annotations

from ..post_import import when_imported
from ..verl_shapes import Hook, Shape, require
from .patches import PATCHES

# verl.plugin.platform's registry (the attribute each CPU patch changes: one hook per module, from the patch table)
CPU_PLATFORM = Hook(
    "the CPU platform (GDPO_VERL_CPU=1)",
    "verl.plugin.platform",
    (Shape("PlatformRegistry.register"), Shape("PlatformBase")),
)


def cpu_hooks() -> list[Hook]:
    """One hook per verl module a CPU patch changes (from the patch table), plus the platform registry."""
    per_module: dict[str, list[Shape]] = {}
    for module_name, attr in PATCHES.values():
        per_module.setdefault(module_name, []).append(Shape(attr))
    return [CPU_PLATFORM] + [Hook(f"CPU training's patch of {m}", m, tuple(s)) for m, s in per_module.items()]


def guard() -> None:
    """CPU mode was asked for: every verl module it patches is checked on import; a missing piece stops the run.
    Registered before the patches themselves, so the check runs first."""
    for hook in cpu_hooks():
        when_imported(hook.module, lambda module, hook=hook: require(hook, module))
