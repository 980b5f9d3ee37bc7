"""The one table of ``algorithm.gdpo.*`` options with their defaults and choices. Standard library only: the
config parser (torch-free) and the core (torch) both read it."""

from __future__ import annotations

from typing import Any

BATCH_NORM_MODES = ("sample", "token", "none")
NAN_POLICIES = ("exclude", "zero", "error")
KL_MODES = ("raw", "error")
IMPLS = ("gdpo_verl", "verl")
ConditionColumns = tuple[int, int, float]  # Eq. 8 as (target column, gate column, threshold)
# The one table of algorithm.gdpo.* options and their defaults (add new options here only).
DEFAULTS: dict[str, Any] = {
    "batch_norm": "sample",
    "eps_group": 1e-6,
    "eps_batch": 1e-6,
    "std_norm": None,  # every reward divided by its group std
    "conditions": None,
    "nan_policy": "exclude",
    "kl_in_reward": "raw",
    "kl_weight": 1.0,
    "impl": "gdpo_verl",
    "aggregation": "gdpo",
    "aggregation_args": None,
}
