"""The quickstart's tasks by name. A task module defines ``DATA_SOURCE``, ``REWARD_KEYS``, ``make_prompt(rng)``,
``make_rows(n, seed, split)``, ``rewards(text, answer) -> {key: value}`` and verl's ``compute_score``, whose
keyword arguments ``<key>_weight`` weight the rewards in ``score``."""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS = {
    "find_digit": "gdpo_verl.quickstart.task",  # fractional easy reward, hard binary reward (docs/cpu-study.md)
    "two_binary": "gdpo_verl.quickstart.two_binary",  # two learnable binary rewards: GRPO collapses groups
}
DEFAULT = "find_digit"


def get(name: str) -> ModuleType:
    if name not in TASKS:
        raise ValueError(f"unknown quickstart task {name!r}; known: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])


def module_path(name: str) -> str:
    """What verl's ``reward.custom_reward_function.path`` takes for this task."""
    get(name)
    return f"pkg://{TASKS[name]}"
