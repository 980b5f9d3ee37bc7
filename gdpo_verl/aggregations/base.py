"""The aggregation slot: how the per-reward advantages A_k (B, K) become the combined A_sum (B,) before the batch step.

An aggregation is called as ``fn(rewards, group_ids, advantages, config)``:

- ``rewards``: (B, K) float64 components after conditioning (NaN = missing);
- ``group_ids``: (B,) int64 dense group ids 0..n-1 (rollouts of one prompt share one);
- ``advantages``: (B, K) float64 group-normalized A_k (paper Eq. 4; 0 where missing), NaN-free;
- ``config``: :class:`AggregationConfig` (reward keys, weights after any schedule, the user's options).

It returns (B,) scalars, or an :class:`AggregationOutput` that also reports effective weights and saturations.
Torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


class AggregationError(ValueError):
    """An aggregation name, option or result that does not fit."""


@dataclass(frozen=True)
class AggregationConfig:
    keys: tuple[str, ...]
    weights: torch.Tensor  # (K,) float64, after the weight schedule
    args: Mapping[str, Any] = field(default_factory=dict)
    n_groups: int = 0


@dataclass
class AggregationOutput:
    combined: torch.Tensor  # (B,) A_sum
    weights: torch.Tensor | None = None  # (K,) effective weight per reward (mean over rollouts where it varies)
    saturation: torch.Tensor | None = None  # (K,) s_k in [0, 1], NaN where unknown


AggregationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AggregationConfig], "AggregationOutput | Any"]


def check_output(name: str, out: Any, n_samples: int, counted: torch.Tensor) -> AggregationOutput:
    """A result of aggregation ``name`` as an AggregationOutput: (B,) finite on every counted rollout."""
    if not isinstance(out, AggregationOutput):
        out = AggregationOutput(out)
    combined = out.combined
    if not isinstance(combined, torch.Tensor):
        raise AggregationError(f"aggregation {name!r} returned {type(combined).__name__}, expected a (B,) tensor")
    if tuple(combined.shape) != (n_samples,):
        raise AggregationError(
            f"aggregation {name!r} returned shape {tuple(combined.shape)}, "
            f"expected ({n_samples},): one scalar per rollout"
        )
    if combined.is_complex():
        raise AggregationError(f"aggregation {name!r} returned dtype {combined.dtype}, expected a real dtype")
    combined = combined.to(torch.float64)
    bad = counted & ~torch.isfinite(combined)
    if bool(bad.any()):
        raise AggregationError(
            f"aggregation {name!r} returned {int(bad.sum())} non-finite value(s) for rollouts that have rewards"
        )
    out.combined = torch.where(counted, combined, torch.zeros_like(combined))
    return out
