"""The one guard between our hooks and verl: each hook declares the verl *shapes* it needs (an attribute, a callable
taking given parameters, a mapping) and is applied when they are there, whatever verl's version string says.

A hook whose shape is missing is not applied; the missing piece is logged once (WARNING, naming the verl version)
and recorded in :func:`problems` (``gdpo-verl doctor`` exits 1 on it; the estimator names it when the V1 hook is
absent). A piece the user asked for explicitly (CPU mode, :mod:`.cpu.guard`) stops the process at verl's import of
that module instead. The exact-shape pins of code the CPU Megatron adjustments rewrite are in :mod:`.cpu.megatron.pins`.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .post_import import when_imported

logger = logging.getLogger("gdpo_verl")


class VerlShapeError(RuntimeError):
    """verl lacks a piece a hook the user asked for needs."""


@dataclass(frozen=True)
class Shape:
    """``attr`` (dotted, inside the hook's module) must exist; ``params``: a callable whose parameters start with
    these names; ``mapping``: a mutable mapping (a registry we add to)."""

    attr: str
    params: tuple[str, ...] | None = None
    mapping: bool = False

    def problem(self, module: ModuleType) -> str | None:
        where = f"{module.__name__}.{self.attr}"
        value: Any = module
        for part in self.attr.split("."):
            if not hasattr(value, part):
                return f"{where} (absent)"
            value = getattr(value, part)
        if self.mapping and not isinstance(value, MutableMapping):
            return f"{where} (not a mapping: {type(value).__name__})"
        if self.params is not None:
            if not callable(value):
                return f"{where} (not callable)"
            try:
                names = tuple(inspect.signature(value).parameters)
            except (TypeError, ValueError):
                return f"{where} (signature unreadable)"
            if names[: len(self.params)] != self.params:
                return f"{where}({', '.join(names)}) (expected parameters {', '.join(self.params)})"
        return None


@dataclass(frozen=True)
class Hook:
    name: str  # what the user loses without it, e.g. "the gdpo estimator registration"
    module: str  # the verl module the hook patches (checked when verl imports it)
    shapes: tuple[Shape, ...]

    def missing(self, module: ModuleType) -> list[str]:
        return [p for p in (s.problem(module) for s in self.shapes) if p]


ESTIMATOR = Hook(
    "the gdpo estimator registration (algorithm.adv_estimator=gdpo)",
    "verl.trainer.ppo.core_algos",
    (Shape("ADV_ESTIMATOR_REGISTRY", mapping=True),),
)
V1_ADVANTAGE = Hook(
    "the V1 trainer advantage hook (reward components for gdpo, gdpo/* metrics)",
    "verl.trainer.ppo.v1.trainer_base",
    (Shape("PPOTrainer._compute_advantage", params=("self", "batch", "metrics")), Shape("tq")),
)
V1_ROLLOUT_DUMP = Hook(
    "the V1 trainer rollout dump hook (reward components in trainer.rollout_data_dir)",
    "verl.trainer.ppo.v1.trainer_base",
    (
        Shape("PPOTrainer._log_rollout_data", params=("self", "batch", "timing_raw", "rollout_data_dir")),
        Shape(
            "PPOTrainer._dump_generations",
            params=("self", "inputs", "outputs", "gts", "scores", "reward_extra_infos_dict", "dump_path"),
        ),
        Shape("tq"),
    ),
)
LEGACY_ADVANTAGE = Hook(
    "the legacy trainer metrics hook (gdpo/* metrics collected at the advantage step)",
    "verl.trainer.ppo.ray_trainer",
    (Shape("compute_advantage", params=("data", "adv_estimator")),),
)
STEP_LOG = Hook(
    "the legacy trainer metrics hook (gdpo/* metrics logged with the step)",
    "verl.utils.tracking",
    (Shape("Tracking.log", params=("self", "data", "step")),),
)
REWARD_MANAGER = Hook(
    "the gdpo_multi reward manager registration",
    "verl.experimental.reward_loop.reward_manager",
    (
        Shape("register", params=("name",)),
        Shape("base.RewardManagerBase.__init__", params=("self", "config", "tokenizer", "compute_score")),
    ),
)
REWARD_LOOP_GUARD = Hook(
    "the gdpo_multi start-up check of reward-model / custom-function settings",
    "verl.experimental.reward_loop.reward_loop",
    (Shape("RewardLoopManager.__init__", params=("self", "config")),),
)
SEPARATED_METRICS = Hook(
    "the one-step-off / fully-async trainer metrics hook (gdpo/* metrics)",
    "verl.experimental.separation.ray_trainer",
    (Shape("SeparateRayPPOTrainer._fit_compute_advantage", params=("self", "batch")),),
)
# the GDPO hooks (doctor checks each)
HOOKS = (
    ESTIMATOR,
    V1_ADVANTAGE,
    V1_ROLLOUT_DUMP,
    LEGACY_ADVANTAGE,
    STEP_LOG,
    SEPARATED_METRICS,
    REWARD_MANAGER,
    REWARD_LOOP_GUARD,
)
_problems: dict[str, str] = {}  # hook name -> what is missing, for this process


def verl_version() -> str | None:
    """The verl being imported (its ``__version__``; a verl put on PYTHONPATH beats the installed metadata)."""
    found = getattr(sys.modules.get("verl"), "__version__", None)
    if found:
        return str(found)
    try:
        from importlib.metadata import version

        return version("verl")
    except Exception:  # noqa: BLE001 - not installed, or broken metadata
        return None


def applies(hook: Hook, module: ModuleType) -> bool:
    """Whether ``module`` has every shape ``hook`` needs; if not, one WARNING naming the missing piece."""
    missing = hook.missing(module)
    if not missing:
        _problems.pop(hook.name, None)
        return True
    message = f"{hook.name} is not applied: verl {verl_version()} lacks {'; '.join(missing)}"
    if _problems.get(hook.name) != message:
        logger.warning("gdpo-verl: %s", message)
    _problems[hook.name] = message
    return False


def require(hook: Hook, module: ModuleType) -> None:
    """Like :func:`applies`, for a piece the user asked for: a missing shape stops the import naming it."""
    if not applies(hook, module):
        raise VerlShapeError(f"gdpo-verl: {_problems[hook.name]}")


def problem(hook: Hook) -> str | None:
    """What keeps ``hook`` from applying in this process (None: applied, or its module not imported yet)."""
    return _problems.get(hook.name)


def problems() -> dict[str, str]:
    return dict(_problems)


def when_shaped(hook: Hook, callback: Callable[[ModuleType], None]) -> None:
    """Run ``callback(module)`` when verl imports ``hook.module``, if the shapes are there."""
    when_imported(hook.module, lambda module: applies(hook, module) and callback(module))
