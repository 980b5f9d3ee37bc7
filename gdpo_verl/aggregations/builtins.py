"""The built-in aggregations. Notation: r_ik reward k of rollout i (after conditioning, NaN = missing), A_ik its
group-normalized advantage (GDPO Eq. 4), w_k the configured (scheduled) weight, g(i) the group of rollout i, K the
number of rewards. Each returns A_sum (B,) before the batch step; options arrive checked with their defaults
(:mod:`.options`). Sources of every equation: docs/aggregations.md.
"""

from __future__ import annotations

import math

import torch

from gdpo_verl.core import group_stats, scatter_sum, sign_conflict

from .base import AggregationConfig, AggregationError, AggregationOutput
from .options import OPTIONS, load_user, ranges


def weighted_sum(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """GDPO Eq. 5/7: A_sum_i = sum_k w_k A_ik."""
    return AggregationOutput(advantages @ config.weights)


def _batch_mean_std(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column over the whole batch's non-missing values: (count, mean, unbiased std), each (K,)."""
    count, mean, std = group_stats(r, torch.zeros(r.shape[0], dtype=torch.long, device=r.device), 1)
    return count[0], mean[0], std[0]


def _ranges_of(rewards: torch.Tensor, config: AggregationConfig, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The declared (lo, hi) per reward; a value outside its range stops the run (a wrong range mis-weights)."""
    lo, hi = (
        torch.tensor(x, dtype=torch.float64, device=rewards.device) for x in ranges(config.keys, config.args["ranges"])
    )
    outside = ~torch.isnan(rewards) & ((rewards < lo) | (rewards > hi))
    if bool(outside.any()):
        k = int(outside.any(dim=0).nonzero()[0])
        raise AggregationError(
            f"aggregation {name}: reward {config.keys[k]!r} has values outside its range "
            f"[{float(lo[k]):g}, {float(hi[k]):g}]; declare it: aggregation_args.ranges.{config.keys[k]}=[lo,hi]"
        )
    return lo, hi


def saturation_of(rewards: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """s_k = (mean_i r_ik - lo_k) / (hi_k - lo_k) over non-missing values, in [0, 1] for values inside [lo, hi]
    (which every caller checks); NaN for an all-missing k."""
    count, mean, _ = _batch_mean_std(rewards)
    s = (mean - lo) / (hi - lo)
    return torch.where(count > 0, s, torch.full_like(s, math.nan))


def saturation(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """SA-MRPO (arXiv 2608.16072): w'_k = w_k (1 - s_k)^gamma, s_k the batch saturation; A_sum_i = sum_k w'_k A_ik.
    An all-missing reward keeps w_k."""
    lo, hi = _ranges_of(rewards, config, "saturation")
    s = saturation_of(rewards, lo, hi)
    factor = torch.where(torch.isnan(s), 1.0, (1.0 - torch.nan_to_num(s)) ** config.args["gamma"])
    weights = config.weights * factor
    return AggregationOutput(advantages @ weights, weights, s)


def cv(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """SAW (arXiv 2606.07705, estimator ``gdpo-h``): each reward shifted by its range's lower bound,

    cv_k  = std_i (r_ik - lo_k) / (|mean_i (r_ik - lo_k)| + eps)      unbiased std over the batch
    w'_k  = w_k K cv_k / (sum_j cv_j + eps)
    A_sum = sum_k w'_k A_ik
    """
    lo, _ = _ranges_of(rewards, config, "cv")
    _, mean, std = _batch_mean_std(rewards - lo)
    eps = config.args["eps"]
    c = std / ((mean).abs() + eps)
    weights = config.weights * (rewards.shape[1] * c / (c.sum() + eps))
    return AggregationOutput(advantages @ weights, weights)


def group_variance(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """DVAO (arXiv 2605.25604), unverified reading (docs/aggregations.md): per group g,

    sigma_gk = unbiased std of r_ik over the non-missing rollouts i of g (0 for fewer than 2)
    w'_gk    = w_k K sigma_gk^p / sum_j sigma_gj^p          (w'_gk = w_k when every sigma_gj is 0)
    A_sum_i  = sum_k w'_{g(i)k} A_ik
    """
    _, _, sigma = group_stats(rewards, group_ids, config.n_groups)
    sigma = sigma ** config.args["power"]
    total = sigma.sum(dim=1, keepdim=True)
    k = rewards.shape[1]
    factor = torch.where(total > 0, k * sigma / total.clamp(min=torch.finfo(torch.float64).tiny), 1.0)
    per_row = config.weights * factor.index_select(0, group_ids)  # (B, K)
    return AggregationOutput((advantages * per_row).sum(dim=1), per_row.mean(dim=0))


RATIO_EPS = 1e-8  # GD²PO's ``gdpo_filter_ratio_conflict_eps``


def conflict(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """GD²PO (arXiv 2606.16771): drop rollouts whose rewards disagree, scale the rest by their group's kept share.

    c_i     = w_k A_ik > 0 > w_l A_il for some k, l                     (the rewards disagree on rollout i)
    mode ratio: c_i &= |sum_k w_k A_ik| / (sum_k |w_k A_ik| + 1e-8) < tau     (only a near-cancelling sum)
    kept_i  = not c_i;   rho_g = (kept rollouts of g) / (rollouts of g)
    A_sum_i = rho_{g(i)}^beta sum_k w_k A_ik for kept i; dropped rollouts get 0 and leave the batch step
    """
    contrib = advantages * config.weights
    c = sign_conflict(contrib)
    if config.args["mode"] == "ratio":
        ratio = contrib.sum(dim=1) / (contrib.abs().sum(dim=1) + RATIO_EPS)
        c = c & (ratio.abs() < config.args["ratio_threshold"])
    kept = ~c
    size = torch.bincount(group_ids, minlength=config.n_groups).to(torch.float64).clamp(min=1.0)
    rho = scatter_sum(kept.to(torch.float64), group_ids, config.n_groups) / size
    factor = torch.where(kept, rho.index_select(0, group_ids) ** config.args["prompt_power"], 0.0)
    return AggregationOutput(factor * (advantages @ config.weights), config.weights * factor.mean(), kept=kept)


BUILTINS = {
    "gdpo": weighted_sum,
    "saturation": saturation,
    "cv": cv,
    "group_variance": group_variance,
    "conflict": conflict,
}


def resolve(name: str):
    """The function behind ``name``: a built-in's (``gdpo`` included) or the user's."""
    return BUILTINS[name] if name in OPTIONS else load_user(name)
