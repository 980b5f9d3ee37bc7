"""Per-batch GDPO diagnostics, logged as ``gdpo/...`` in verl's metrics dict. Torch only, vectorized."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from gdpo_verl.core import GDPOResult, group_normalize
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


def collapse_metrics(result: GDPOResult, gid: torch.Tensor, weights: torch.Tensor, eps: float) -> dict[str, float]:
    """Distinct advantage values per group under GDPO (the rewards' part of A_sum, e.g. sum_k w_k A_k, without any
    KL term) vs what GRPO would give for the same rewards (weighted sum of raw components, then group z-score),
    averaged over groups of 2 or more rollouts."""
    sizes = torch.bincount(gid)
    multi = sizes >= 2
    if not bool(multi.any()):
        return {}
    summed = torch.nan_to_num(result.rewards, nan=0.0) @ weights
    grpo = group_normalize(summed.unsqueeze(-1), gid, int(sizes.numel()), eps).squeeze(-1)
    part = result.reward_part if result.reward_part is not None else result.per_reward @ weights
    d_gdpo = distinct_per_group(part, gid)[multi].to(torch.float64)
    d_grpo = distinct_per_group(grpo, gid)[multi].to(torch.float64)
    return {
        "gdpo/collapse/distinct_gdpo": float(d_gdpo.mean()),
        "gdpo/collapse/distinct_grpo": float(d_grpo.mean()),
        # share of groups where GRPO merges reward combinations that GDPO keeps apart
        "gdpo/collapse/grpo_collapsed_frac": float((d_grpo < d_gdpo).to(torch.float64).mean()),
    }


def gdpo_metrics(result: GDPOResult, keys: Sequence[str], weights: Sequence[float], eps: float) -> dict[str, float]:
    """``gdpo/<key>/{mean,std,min,max,missing_frac,adv_share,zero_var_frac}`` plus batch and collapse figures."""
    raw = result.rewards
    w = torch.as_tensor(weights, dtype=torch.float64)
    gid = result.gid
    n_groups = int(gid.max()) + 1 if gid.numel() else 0
    out: dict[str, float] = {"gdpo/impl": 1.0}
    n_valid = (~torch.isnan(raw)).sum(dim=0)
    # every per-key figure as one (K,) row, converted to Python in one go (one device sync on a GPU)
    contrib = (result.per_reward * w).abs().sum(dim=0)
    total = contrib.sum()
    moving = torch.zeros(n_groups, raw.shape[1], dtype=torch.float64).index_add_(
        0, gid, (result.per_reward != 0).to(torch.float64)
    )
    rows = torch.stack(
        [
            1.0 - n_valid.to(torch.float64) / max(raw.shape[0], 1),
            torch.where(total > 0, contrib / total.clamp(min=torch.finfo(torch.float64).tiny), 0.0),
            (moving == 0).to(torch.float64).mean(dim=0) if n_groups else torch.zeros(raw.shape[1], dtype=torch.float64),
        ]
    ).tolist()
    names = ("missing_frac", "adv_share", "zero_var_frac")
    for k, key in enumerate(keys):
        for name, row in zip(names, rows, strict=True):
            out[f"gdpo/{key}/{name}"] = row[k]
    out.update(per_key_stats(keys, raw.detach().cpu().numpy()))  # mean/std/min/max, as for other estimators
    out["gdpo/all_missing_frac"] = float((~result.counted).to(torch.float64).mean()) if raw.numel() else 0.0
    out["gdpo/batch/mean"] = result.stats.get("batch_mean", 0.0)
    out["gdpo/batch/std"] = result.stats.get("batch_std", 1.0)
    out.update(collapse_metrics(result, gid, w, eps))
    return out


def aggregation_metrics(
    result: GDPOResult, keys: Sequence[str], weights: torch.Tensor, report: Sequence[Any]
) -> dict[str, float]:
    """``gdpo/<key>/weight`` (effective weight after the schedule and the aggregation), ``gdpo/<key>/saturation``
    (batch mean of the reward rescaled by its range; [0, 1] assumed unless the aggregation says otherwise, left out
    for a reward with values outside it) and ``gdpo/conflict/<a>__<b>`` (share of rollouts with rewards whose
    weighted per-reward advantages have opposite signs)."""
    from gdpo_verl.aggregations import saturation_of

    out = report[-1] if report else None
    eff = out.weights if out is not None and out.weights is not None else weights
    sat = out.saturation if out is not None and out.saturation is not None else None
    r = result.rewards
    if sat is None:
        valid = ~torch.isnan(r)
        inside = ~(valid & ((r < 0) | (r > 1))).any(dim=0)
        sat = torch.where(inside, saturation_of(r, torch.zeros(()), torch.ones(())), torch.nan)
    signs = torch.sign(result.per_reward * weights)
    n = max(int(result.counted.sum()), 1)
    pairs = [(a, b) for a in range(len(keys)) for b in range(a + 1, len(keys))]
    conflict = [((signs[:, a] * signs[:, b] < 0) & result.counted).sum() / n for a, b in pairs]
    rows = torch.stack([eff.to(torch.float64), sat.to(torch.float64)]).tolist()
    metrics: dict[str, float] = {}
    for k, key in enumerate(keys):
        metrics[f"gdpo/{key}/weight"] = rows[0][k]
        if not math.isnan(rows[1][k]):
            metrics[f"gdpo/{key}/saturation"] = rows[1][k]
    if pairs:
        for (a, b), v in zip(pairs, torch.stack(conflict).tolist(), strict=True):
            metrics[f"gdpo/conflict/{keys[a]}__{keys[b]}"] = v
    return metrics
