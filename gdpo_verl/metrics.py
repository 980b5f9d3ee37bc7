"""Per-batch GDPO diagnostics, logged as ``gdpo/...`` in verl's metrics dict. Torch only, vectorized."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gdpo_verl.aggregations.base import AggregationOutput
from gdpo_verl.aggregations.builtins import saturation_of
from gdpo_verl.core import GDPOResult, flat_groups, group_normalize, sign_conflict
from gdpo_verl.reward_stats import per_key_stats


def distinct_per_group(values: torch.Tensor, gid: torch.Tensor, decimals: int = 6) -> torch.Tensor:
    """Number of distinct values (rounded to ``decimals``) in each group: (n_groups,) long."""
    n_groups = int(gid.max()) + 1 if gid.numel() else 0
    if not n_groups:
        return torch.zeros(0, dtype=torch.long)
    rounded = torch.round(values.to(torch.float64) * 10**decimals).to(torch.int64)
    lo = int(rounded.min())
    span = int(rounded.max()) - lo + 1
    if span * n_groups < 2**62:  # one plain sort of a combined (group, value) key
        key, _ = torch.sort(gid * span + (rounded - lo))
        g = torch.div(key, span, rounding_mode="floor")
        first = torch.ones_like(key, dtype=torch.bool)
        first[1:] = key[1:] != key[:-1]
    else:  # huge values: sort by value, then stably by group
        order = torch.argsort(rounded, stable=True)
        order = order[torch.argsort(gid[order], stable=True)]
        g, v = gid[order], rounded[order]
        first = torch.ones_like(g, dtype=torch.bool)
        first[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    return torch.bincount(g[first], minlength=n_groups)


def grpo_collapse(
    rewards: torch.Tensor,
    reward_part: torch.Tensor,
    gid: torch.Tensor,
    n_groups: int,
    weights: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct advantage values in each group of 2 or more rollouts under GDPO (``reward_part``: A_sum from the
    rewards, without any KL term) and under GRPO on the same rewards (weighted sum of the raw components, missing
    as 0, then group z-score): two (groups,) float64 tensors."""
    multi = torch.bincount(gid, minlength=n_groups) >= 2
    summed = torch.nan_to_num(rewards, nan=0.0) @ weights
    grpo = group_normalize(summed.unsqueeze(-1), gid, n_groups, eps).squeeze(-1)
    d_gdpo = distinct_per_group(reward_part, gid)[multi].to(torch.float64)
    return d_gdpo, distinct_per_group(grpo, gid)[multi].to(torch.float64)


def collapse_metrics(result: GDPOResult, weights: torch.Tensor, eps: float) -> dict[str, float]:
    """:func:`grpo_collapse` averaged over groups, and the share of groups where GRPO merges reward combinations
    that GDPO keeps apart."""
    d_gdpo, d_grpo = grpo_collapse(result.rewards, result.combined, result.gid, result.n_groups, weights, eps)
    if not d_gdpo.numel():
        return {}
    return {
        "gdpo/collapse/distinct_gdpo": float(d_gdpo.mean()),
        "gdpo/collapse/distinct_grpo": float(d_grpo.mean()),
        "gdpo/collapse/grpo_collapsed_frac": float((d_grpo < d_gdpo).to(torch.float64).mean()),
    }


def gdpo_metrics(result: GDPOResult, keys: Sequence[str], weights: Sequence[float], eps: float) -> dict[str, float]:
    """``gdpo/<key>/{mean,std,min,max,missing_frac,adv_share,zero_var_frac}`` plus batch and collapse figures."""
    raw = result.rewards
    w = torch.as_tensor(weights, dtype=torch.float64)
    out: dict[str, float] = {"gdpo/impl": 1.0}
    n_valid = (~torch.isnan(raw)).sum(dim=0)
    # every per-key figure as one (K,) row, converted to Python in one go (one device sync on a GPU)
    contrib = (result.per_reward * w).abs().sum(dim=0)
    total = contrib.sum()
    rows = torch.stack(
        [
            1.0 - n_valid.to(torch.float64) / max(raw.shape[0], 1),
            torch.where(total > 0, contrib / total.clamp(min=torch.finfo(torch.float64).tiny), 0.0),
            flat_groups(result.per_reward, result.gid, result.n_groups).to(torch.float64).mean(dim=0),
        ]
    ).tolist()
    names = ("missing_frac", "adv_share", "zero_var_frac")
    for k, key in enumerate(keys):
        for name, row in zip(names, rows, strict=True):
            out[f"gdpo/{key}/{name}"] = row[k]
    out.update(per_key_stats(keys, raw.detach().cpu().numpy()))  # mean/std/min/max, as for other estimators
    out["gdpo/all_missing_frac"] = float(torch.isnan(raw).all(dim=1).to(torch.float64).mean()) if raw.numel() else 0.0
    out["gdpo/batch/mean"] = result.stats["batch_mean"]
    out["gdpo/batch/std"] = result.stats["batch_std"]
    out.update(collapse_metrics(result, w, eps))
    return out


def aggregation_metrics(
    result: GDPOResult, keys: Sequence[str], weights: torch.Tensor, out: AggregationOutput
) -> dict[str, float]:
    """``gdpo/<key>/weight`` (effective weight after the schedule and the aggregation), ``gdpo/<key>/saturation``
    (batch mean of the reward rescaled by its range; [0, 1] assumed unless the aggregation says otherwise, left out
    for a reward with values outside it) and ``gdpo/conflict/<a>__<b>`` (share of the rollouts with rewards where
    rewards a and b push the weighted advantage in opposite directions)."""
    eff = out.weights if out.weights is not None else weights
    sat = out.saturation
    r = result.rewards
    if sat is None:
        valid = ~torch.isnan(r)
        inside = ~(valid & ((r < 0) | (r > 1))).any(dim=0)
        sat = torch.where(inside, saturation_of(r, torch.zeros(()), torch.ones(())), torch.nan)
    contrib = result.per_reward * weights
    has_reward = ~torch.isnan(r).all(dim=1)
    n = max(int(has_reward.sum()), 1)
    pairs = [(a, b) for a in range(len(keys)) for b in range(a + 1, len(keys))]
    conflict = [(sign_conflict(contrib[:, [a, b]]) & has_reward).sum() / n for a, b in pairs]
    rows = torch.stack([eff, sat]).tolist()
    metrics: dict[str, float] = {}
    for k, key in enumerate(keys):
        metrics[f"gdpo/{key}/weight"] = rows[0][k]
        if not math.isnan(rows[1][k]):
            metrics[f"gdpo/{key}/saturation"] = rows[1][k]
    if pairs:
        for (a, b), v in zip(pairs, torch.stack(conflict).tolist(), strict=True):
            metrics[f"gdpo/conflict/{keys[a]}__{keys[b]}"] = v
    return metrics
