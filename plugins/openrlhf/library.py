"""Every call this adapter makes into the gdpo_verl library, in one place: parse settings, compute advantages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from gdpo_verl.config import OPTION_KEYS, GDPOConfig, GDPOConfigError
from gdpo_verl.estimator import compute_gdpo

__all__ = ["OPTION_KEYS", "GDPOConfig", "GDPOConfigError", "advantages", "parse"]


def parse(algorithm: Mapping[str, Any]) -> GDPOConfig:
    """Validate a verl-shaped ``algorithm`` section (the verl path's checks and messages)."""
    return GDPOConfig.from_algorithm(algorithm)


def advantages(
    components: torch.Tensor, groups: torch.Tensor, lengths: torch.Tensor, cfg: GDPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """(B,) float64 scalar advantages and the gdpo/* metrics for (B, K) components grouped by ``groups``."""
    return compute_gdpo(components, groups, lengths, cfg)
