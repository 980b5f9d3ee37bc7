"""The OpenRLHF pieces this adapter relies on, checked where they are used (whatever openrlhf's version string says).

Written against openrlhf 0.11.2. A missing piece stops with :class:`OpenRLHFShapeError` naming the openrlhf version
and the attribute, instead of training with something else.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from gdpo_verl_plugins.verl_shapes import Shape

WRITTEN_FOR = "0.11.2"
EXPERIENCE_MAKER = "openrlhf.trainer.ppo_utils.experience_maker"
TRAINER = "openrlhf.trainer.ppo_trainer"
LAUNCHER = "openrlhf.cli.train_ppo_ray"

# module -> the shapes read there
SHAPES: dict[str, tuple[Shape, ...]] = {
    EXPERIENCE_MAKER: (
        Shape("RemoteExperienceMaker.compute_advantages_and_returns", params=("self", "experiences")),
        Shape("RemoteExperienceMaker.make_experience_batch", params=("self", "rollout_samples")),
        Shape("RemoteExperienceMaker.get_cumulative_returns", params=("self", "rewards", "action_mask", "gamma")),
        Shape("compute_reward", params=("r", "kl_coef", "kl", "action_mask", "reward_clip_range")),
    ),
    "openrlhf.trainer.ppo_utils.experience": (Shape("Experience.concat_experiences"),),
    TRAINER: (Shape("RemoteExperienceMaker"), Shape("BasePPOTrainer.train_step", params=("self", "rollout_samples"))),
    "openrlhf.utils.config": (Shape("hierarchize", params=("args",)),),
}


class OpenRLHFShapeError(RuntimeError):
    """openrlhf lacks a piece GDPO's adapter needs."""


def openrlhf_version() -> str:
    try:
        from importlib.metadata import version

        return version("openrlhf")
    except Exception:  # noqa: BLE001 - not installed, or broken metadata
        return "(not installed)"


def require_module(name: str) -> None:
    """``name`` can be imported (without importing it)."""
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:  # its package is absent
        found = False
    if not found:
        raise OpenRLHFShapeError(
            f"gdpo-verl: GDPO on OpenRLHF needs {name}, absent from openrlhf {openrlhf_version()} "
            f"(the adapter is written against openrlhf {WRITTEN_FOR})"
        )


def require(name: str) -> ModuleType:
    """Import ``name`` and check the shapes read there; raise naming what is missing."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise OpenRLHFShapeError(
            f"gdpo-verl: GDPO on OpenRLHF needs {name} (openrlhf {openrlhf_version()}): {exc}. "
            f"Install the written-for release: pip install 'gdpo-verl[openrlhf]' (openrlhf=={WRITTEN_FOR})"
        ) from exc
    missing = [p for p in (s.problem(module) for s in SHAPES.get(name, ())) if p]
    if missing:
        raise OpenRLHFShapeError(
            f"gdpo-verl: GDPO on OpenRLHF cannot run on openrlhf {openrlhf_version()}: it lacks {'; '.join(missing)} "
            f"(the adapter is written against openrlhf {WRITTEN_FOR})"
        )
    return module
