"""GDPO advantages (arXiv 2601.05242, Eqs. 4-8), vectorized over the batch. Depends on torch only.

Notation: B samples (rollouts), K reward components, groups = rollouts of the same prompt (G per group).

    Eq. 8   r_k := r_k if r_l >= t else 0                    (conditioned reward, optional)
    Eq. 4   A_k = (r_k - mean_group r_k) / (std_group r_k + eps_group)
    Eq. 5/7 A_sum = sum_k w_k A_k
    Eq. 6   A = (A_sum - mean_batch A_sum) / (std_batch A_sum + eps_batch)     (over samples; `token`/`none` options)

Choices the paper leaves open: unbiased std; a reward whose values are all equal inside a group, or a group of
one rollout, contributes exactly 0; missing values (NaN) are left out of their reward's statistics and give A_k = 0;
a sample with every reward missing gets 0 and is left out of the batch statistics. No NaN ever comes out.

The estimator (:mod:`gdpo_verl.estimator`) runs these steps with an aggregation in place of Eq. 5/7;
:func:`gdpo_advantages` is the paper's GDPO as one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gdpo_verl.conditions import conditioned
from gdpo_verl.defaults import BATCH_NORM_MODES, DEFAULTS, ConditionColumns

GROUP_EPS = DEFAULTS["eps_group"]
BATCH_EPS = DEFAULTS["eps_batch"]


@dataclass
class GDPOResult:
    advantages: torch.Tensor  # (B,) final scalar advantage per sample, float64
    per_reward: torch.Tensor  # (B, K) group-normalized A_k (before weights), float64
    combined: torch.Tensor  # (B,) A_sum from the rewards, before any KL term and the batch step
    counted: torch.Tensor  # (B,) bool: sample enters the batch statistics
    rewards: torch.Tensor  # (B, K) components after conditioning / NaN policy (NaN = missing)
    gid: torch.Tensor  # (B,) dense group ids
    n_groups: int
    stats: dict[str, float]  # batch_mean, batch_std


def group_index(index: Sequence | torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map arbitrary group labels (verl's uid strings, ints) to dense ids 0..n-1, in first-seen order."""
    if isinstance(index, torch.Tensor):
        _, inverse = torch.unique(index, return_inverse=True)
        return inverse.long(), int(inverse.max().item()) + 1 if inverse.numel() else 0
    ids: dict = {}
    dense = [ids.setdefault(label, len(ids)) for label in index]
    return torch.tensor(dense, dtype=torch.long), len(ids)


def scatter_sum(values: torch.Tensor, gid: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-group sums of ``values`` (B, ...) -> (n_groups, ...)."""
    out = torch.zeros((n_groups,) + values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add_(0, gid, values)


def group_stats(rewards: torch.Tensor, gid: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, ...]:
    """Per group and column of ``rewards`` (B, K), over non-missing values: (count, mean, unbiased std), each
    (n_groups, K) float64; the std of fewer than 2 values is 0."""
    r = rewards.to(torch.float64)
    valid = ~torch.isnan(r)
    count = scatter_sum(valid.to(torch.float64), gid, n_groups)
    mean = scatter_sum(torch.where(valid, r, 0.0), gid, n_groups) / count.clamp(min=1.0)
    dev = torch.where(valid, r - mean.index_select(0, gid), 0.0)
    std = (scatter_sum(dev * dev, gid, n_groups) / (count - 1.0).clamp(min=1.0)).sqrt()
    return count, mean, std


def group_normalize(
    rewards: torch.Tensor,
    gid: torch.Tensor,
    n_groups: int,
    eps: float = GROUP_EPS,
    scale_by_std: torch.Tensor | bool = True,
    zero_tol: float = 1e-9,
) -> torch.Tensor:
    """Eq. 4 for every column of ``rewards`` (B, K) at once; NaN = missing. Returns (B, K) float64 with no NaN.
    ``scale_by_std`` is a bool or a (K,) bool tensor.
    """
    r = rewards.to(torch.float64)
    valid = ~torch.isnan(r)
    count, mean, std = group_stats(r, gid, n_groups)
    # Zero-variance test on the value range, so float noise never gets divided by a tiny std.
    big = torch.finfo(torch.float64).max
    at = gid.unsqueeze(-1).expand_as(r)
    hi = torch.full_like(mean, -big).scatter_reduce_(0, at, torch.where(valid, r, -big), "amax")
    lo = torch.full_like(mean, big).scatter_reduce_(0, at, torch.where(valid, r, big), "amin")
    flat = (hi - lo) <= zero_tol * torch.maximum(hi.abs(), lo.abs()).clamp(min=1.0)
    informative = (count >= 2.0) & ~flat  # (n, K)
    scale = torch.as_tensor(scale_by_std, dtype=torch.bool, device=r.device)
    denom = torch.where(scale, std + eps, torch.ones_like(std))
    adv = (r - mean.index_select(0, gid)) / denom.index_select(0, gid)  # NaN where missing, dropped by keep
    keep = valid & informative.index_select(0, gid)
    return torch.where(keep, adv, torch.zeros_like(adv))


def flat_groups(per_reward: torch.Tensor, gid: torch.Tensor, n_groups: int) -> torch.Tensor:
    """(n_groups, K) bool: reward k gives every rollout of the group A_k = 0 (flat, missing or a singleton)."""
    return scatter_sum((per_reward != 0).to(torch.float64), gid, n_groups) == 0


def apply_conditions(rewards: torch.Tensor, conditions: Sequence[ConditionColumns]) -> torch.Tensor:
    """Eq. 8 on (B, K) rewards, each condition as (target column, gate column, threshold): the target counts only
    where the gate is >= threshold. Gates read the unconditioned values; a missing gate or target stays missing."""
    out = rewards.clone()
    for target_col, gate_col, threshold in conditions:
        out[:, target_col] = conditioned(rewards[:, target_col], rewards[:, gate_col], threshold)
    return out


def sign_conflict(contributions: torch.Tensor) -> torch.Tensor:
    """(B,) bool: some column of ``contributions`` (B, K) is > 0 and another < 0 (zeros agree with everything)."""
    return (contributions > 0).any(dim=1) & (contributions < 0).any(dim=1)


def batch_normalize(
    values: torch.Tensor,
    counted: torch.Tensor,
    mode: str,
    eps: float = BATCH_EPS,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, float]:
    """Eq. 6. ``sample``: each counted rollout once; ``token``: weighted by response length (verl built-in parity,
    i.e. masked whitening: unbiased token variance, ``rsqrt(var + eps**2)``); ``none``: unchanged.
    Returns (normalized values with 0 outside ``counted``, mean, std)."""
    if mode not in BATCH_NORM_MODES:
        raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {mode!r}")
    zero = torch.zeros_like(values)
    if mode == "none" or not bool(counted.any()):
        return torch.where(counted, values, zero), 0.0, 1.0
    if mode == "sample":
        w = counted.to(torch.float64)
    else:
        if lengths is None:
            raise ValueError("batch_norm='token' needs the response lengths")
        w = torch.where(counted, lengths.to(torch.float64), torch.zeros_like(values))
    total = w.sum()
    mean = (w * values).sum() / total.clamp(min=1.0)
    var = (w * (values - mean) ** 2).sum() / (total - 1.0).clamp(min=1.0)
    std = var.sqrt()
    if mode == "sample":
        out = (values - mean) / (std + eps)
    else:
        out = (values - mean) * torch.rsqrt(var + eps * eps)
    return torch.where(counted, out, zero), float(mean), float(std)


def gdpo_advantages(
    rewards: torch.Tensor,
    index: Sequence | torch.Tensor,
    weights: Sequence[float] | torch.Tensor | None = None,
    *,
    eps_group: float = GROUP_EPS,
    eps_batch: float = BATCH_EPS,
    scale_by_std: Sequence[bool] | bool = True,
    batch_norm: str = DEFAULTS["batch_norm"],
    conditions: Sequence[ConditionColumns] = (),
    lengths: torch.Tensor | None = None,
) -> GDPOResult:
    """The paper's GDPO for a batch: Eq. 8, Eq. 4, Eq. 5/7 (weighted sum), Eq. 6.

    rewards: (B, K) components (NaN = missing). index: (B,) group labels. weights: (K,), default all 1.
    lengths: (B,) response lengths (for ``token`` mode).
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (batch, n_rewards), got shape {tuple(rewards.shape)}")
    n_samples, n_rewards = rewards.shape
    w = torch.ones(n_rewards, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (n_rewards,):
        raise ValueError(f"{w.numel()} weights for {n_rewards} rewards")
    r = apply_conditions(rewards.to(torch.float64), conditions)
    gid, n_groups = group_index(index)
    if gid.numel() != n_samples:
        raise ValueError(f"index has {gid.numel()} entries for {n_samples} samples")
    gid = gid.to(r.device)
    per_reward = group_normalize(r, gid, n_groups, eps_group, torch.as_tensor(scale_by_std))
    combined = per_reward @ w.to(r.device)
    counted = ~torch.isnan(r).all(dim=1)
    adv, mean, std = batch_normalize(combined, counted, batch_norm, eps_batch, lengths)
    return GDPOResult(adv, per_reward, combined, counted, r, gid, n_groups, {"batch_mean": mean, "batch_std": std})
