"""The aggregation slot: how the per-reward advantages A_k (B, K) become the combined A_sum (B,) before the batch step.

An aggregation is called as ``fn(rewards, group_ids, advantages, config)``:

- ``rewards``: (B, K) float64 components after conditioning (NaN = missing);
- ``group_ids``: (B,) int64 dense group ids 0..n-1 (rollouts of one prompt share one);
- ``advantages``: (B, K) float64 group-normalized A_k (paper Eq. 4; 0 where missing), NaN-free;
- ``config``: :class:`AggregationConfig` (reward keys, weights after any schedule, the user's options).

It returns (B,) scalars, or an :class:`AggregationOutput` that also reports effective weights and saturations, and
may leave rollouts out of the batch step (``kept``). Torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .options import AggregationError


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
    kept: torch.Tensor | None = None  # (B,) bool: rollouts the batch step counts (None: all); the others get 0


AggregationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, AggregationConfig], "AggregationOutput | Any"]


def check_output(name: str, out: Any, n_samples: int, counted: torch.Tensor) -> AggregationOutput:
    """A result of aggregation ``name`` as an AggregationOutput: (B,) finite on every counted rollout, 0 on the
    others; ``kept`` narrowed to the counted rollouts."""
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
    if out.kept is not None:
        if not isinstance(out.kept, torch.Tensor) or tuple(out.kept.shape) != (n_samples,):
            raise AggregationError(f"aggregation {name!r} returned kept that is not a (B,) = ({n_samples},) tensor")
        counted = counted & out.kept.to(torch.bool)
    out.kept = counted
    out.combined = torch.where(counted, combined, torch.zeros_like(combined))
    return out
