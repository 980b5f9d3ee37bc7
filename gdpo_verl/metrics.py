"""Per-batch GDPO diagnostics, logged as ``gdpo/...`` in verl's metrics dict. Torch only, vectorized."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gdpo_verl.core import GDPOResult, group_normalize


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
    """Distinct advantage values per group under GDPO (A_sum) vs what GRPO would give for the same rewards
    (weighted sum of raw components, then group z-score), averaged over groups of 2 or more rollouts."""
    sizes = torch.bincount(gid)
    multi = sizes >= 2
    if not bool(multi.any()):
        return {}
    summed = torch.nan_to_num(result.rewards, nan=0.0) @ weights
    grpo = group_normalize(summed.unsqueeze(-1), gid, int(sizes.numel()), eps).squeeze(-1)
    d_gdpo = distinct_per_group(result.combined, gid)[multi].to(torch.float64)
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
    valid = ~torch.isnan(raw)
    contrib = (result.per_reward * w).abs().sum(dim=0)
    total = float(contrib.sum())
    for k, key in enumerate(keys):
        vals = raw[valid[:, k], k]
        out[f"gdpo/{key}/missing_frac"] = float(1.0 - valid[:, k].to(torch.float64).mean()) if raw.numel() else 0.0
        if vals.numel():
            out[f"gdpo/{key}/mean"] = float(vals.mean())
            out[f"gdpo/{key}/std"] = float(vals.std(unbiased=False))
            out[f"gdpo/{key}/min"] = float(vals.min())
            out[f"gdpo/{key}/max"] = float(vals.max())
        out[f"gdpo/{key}/adv_share"] = float(contrib[k]) / total if total > 0 else 0.0
        moving = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, gid, (result.per_reward[:, k] != 0).double())
        out[f"gdpo/{key}/zero_var_frac"] = float((moving == 0).to(torch.float64).mean()) if n_groups else 0.0
    out["gdpo/all_missing_frac"] = float((~result.counted).to(torch.float64).mean()) if raw.numel() else 0.0
    out["gdpo/batch/mean"] = result.stats.get("batch_mean", 0.0)
    out["gdpo/batch/std"] = result.stats.get("batch_std", 1.0)
    out.update(collapse_metrics(result, gid, w, eps))
    return out
