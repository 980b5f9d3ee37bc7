"""A user aggregation for ``algorithm.gdpo.aggregation``: within-group rank (quantile) normalization, in the spirit of
RDPO. Each reward is replaced by its mid-rank quantile inside the prompt's group, in [-0.5, 0.5], so reward scale and
outliers do not matter; the quantiles are summed with the configured weights.

    PYTHONPATH=examples/aggregations ... +algorithm.gdpo.aggregation=rank_aggregation:rank

or register it as an entry point of the group ``gdpo_verl.aggregations`` (docs/aggregations.md).
Memory is O(B^2 K): fine for a few thousand rollouts; sort per group for more.
"""

from __future__ import annotations

import torch


def rank(rewards: torch.Tensor, group_ids: torch.Tensor, advantages: torch.Tensor, config) -> torch.Tensor:
    r = torch.nan_to_num(rewards, nan=float("-inf"))  # a missing value ranks lowest
    same = (group_ids.unsqueeze(0) == group_ids.unsqueeze(1)).unsqueeze(-1)  # (B, B, 1): same prompt
    below = ((r.unsqueeze(0) < r.unsqueeze(1)) & same).sum(1).double()
    equal = ((r.unsqueeze(0) == r.unsqueeze(1)) & same).sum(1).double()
    size = same.sum(1).double()
    quantile = (below + (equal - 1) / 2) / (size - 1).clamp(min=1) - 0.5
    return quantile @ config.weights * float(config.args.get("scale", 1.0))
