"""Built-in aggregations beyond the paper's weighted sum. Equations as implemented (the cited papers were not at
hand: each formula below is this project's reading of the method's description; details it leaves open are marked
"decided"). Notation: r_ik reward k of rollout i, A_ik its group-normalized advantage (Eq. 4 of GDPO), w_k the
configured (scheduled) weight, g(i) the group of rollout i, K the number of rewards. Every function returns A_sum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from gdpo_verl.core import _scatter_sum

from .base import AggregationConfig, AggregationError, AggregationOutput


def _nan_mean_std(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per column over non-missing values: (mean, population std, count)."""
    valid = ~torch.isnan(r)
    n = valid.sum(dim=0).to(r.dtype)
    r0 = torch.where(valid, r, torch.zeros_like(r))
    mean = r0.sum(dim=0) / n.clamp(min=1.0)
    dev = torch.where(valid, r - mean, torch.zeros_like(r))
    return mean, ((dev * dev).sum(dim=0) / n.clamp(min=1.0)).sqrt(), n


def saturation_of(rewards: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """s_k = clip((mean_i r_ik - lo_k) / (hi_k - lo_k), 0, 1) over non-missing values; NaN for an all-missing k."""
    mean, _, n = _nan_mean_std(rewards)
    s = ((mean - lo) / (hi - lo)).clamp(0.0, 1.0)
    return torch.where(n > 0, s, torch.full_like(s, math.nan))


def ranges(keys: tuple[str, ...], raw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``ranges: {key: [lo, hi]}`` -> (lo, hi) (K,) tensors; a key left out has [0, 1]."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise AggregationError(f"aggregation_args.ranges must map reward key -> [lo, hi], got {raw!r}")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise AggregationError(f"aggregation_args.ranges names {unknown}, not in gdpo_reward_keys={list(keys)}")
    lo, hi = [0.0] * len(keys), [1.0] * len(keys)
    for key, pair in raw.items():
        try:
            a, b = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise AggregationError(f"aggregation_args.ranges.{key} must be [lo, hi], got {pair!r}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise AggregationError(f"aggregation_args.ranges.{key} must be finite with lo < hi, got {pair!r}")
        lo[keys.index(key)], hi[keys.index(key)] = a, b
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)


def saturation(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """SA-MRPO (arXiv 2608.16072), saturation-aware weights:

        s_k   = clip((mean_i r_ik - lo_k) / (hi_k - lo_k), 0, 1)       batch mean over non-missing values
        w'_k  = w_k (1 - s_k)^gamma
        A_sum = sum_k w'_k A_ik

    Options: ``gamma`` (>= 0, default 1; gamma = 0 gives w'_k = w_k, i.e. exactly GDPO), ``ranges`` ({key: [lo, hi]},
    default [0, 1]). Decided: s_k is measured on the current batch (no moving average); a value outside its declared
    range is an error (a wrong range would silently mis-weight); an all-missing reward keeps w_k.
    """
    lo, hi = ranges(config.keys, config.args.get("ranges"))
    valid = ~torch.isnan(rewards)
    outside = valid & ((rewards < lo) | (rewards > hi))
    if bool(outside.any()):
        k = int(outside.any(dim=0).nonzero()[0])
        raise AggregationError(
            f"aggregation saturation: reward {config.keys[k]!r} has values outside its range "
            f"[{float(lo[k]):g}, {float(hi[k]):g}]; declare it: aggregation_args.ranges.{config.keys[k]}=[lo,hi]"
        )
    s = saturation_of(rewards, lo, hi)
    gamma = float(config.args.get("gamma", 1.0))
    factor = torch.where(torch.isnan(s), torch.ones_like(s), (1.0 - torch.nan_to_num(s)) ** gamma)
    weights = config.weights * factor
    return AggregationOutput(advantages @ weights, weights, s)


def cv(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """SAW (arXiv 2606.07705), weights from each reward's coefficient of variation over the batch:

        cv_k  = std_i r_ik / (|mean_i r_ik| + eps)       population std over non-missing values
        w'_k  = w_k * K cv_k / sum_j cv_j                (w'_k = w_k when every cv_j is 0)
        A_sum = sum_k w'_k A_ik

    Option: ``eps`` (> 0, default 1e-6). Decided: the multipliers K cv_k / sum_j cv_j average to 1, so the scale of
    A_sum stays that of GDPO (it matters only with ``batch_norm=none``).
    """
    mean, std, _ = _nan_mean_std(rewards)
    c = std / (mean.abs() + float(config.args.get("eps", 1e-6)))
    total = c.sum()
    k = rewards.shape[1]
    factor = torch.where(total > 0, k * c / total.clamp(min=torch.finfo(torch.float64).tiny), torch.ones_like(c))
    weights = config.weights * factor
    return AggregationOutput(advantages @ weights, weights)


def group_variance(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """DVAO (arXiv 2605.25604), weights from each reward's within-group variance:

        sigma_gk = unbiased std of r_ik over the non-missing rollouts i of group g (0 for fewer than 2)
        w'_gk    = w_k * K sigma_gk^p / sum_j sigma_gj^p          (w'_gk = w_k when every sigma_gj is 0)
        A_sum_i  = sum_k w'_{g(i)k} A_ik

    Option: ``power`` p (> 0, default 1). Decided: weights are per group (a reward that varies more inside a prompt's
    group gets a larger share there) and average to 1 over the rewards; the logged weight is their mean over rollouts.
    """
    valid = ~torch.isnan(rewards)
    r0 = torch.where(valid, rewards, torch.zeros_like(rewards))
    n = config.n_groups
    count = _scatter_sum(valid.to(torch.float64), group_ids, n)
    mean = _scatter_sum(r0, group_ids, n) / count.clamp(min=1.0)
    dev = torch.where(valid, rewards - mean.index_select(0, group_ids), torch.zeros_like(rewards))
    sigma = (_scatter_sum(dev * dev, group_ids, n) / (count - 1.0).clamp(min=1.0)).sqrt()
    sigma = torch.where(count >= 2, sigma, torch.zeros_like(sigma)) ** float(config.args.get("power", 1.0))
    total = sigma.sum(dim=1, keepdim=True)
    k = rewards.shape[1]
    factor = torch.where(total > 0, k * sigma / total.clamp(min=torch.finfo(torch.float64).tiny), 1.0)
    per_row = config.weights * factor.index_select(0, group_ids)  # (B, K)
    return AggregationOutput((advantages * per_row).sum(dim=1), per_row.mean(dim=0))


def sign_conflict(advantages: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) bool: some reward pushes the rollout up and another pushes it down (signs of w_k A_ik, zeros ignored)."""
    contrib = advantages * weights
    return (contrib > 0).any(dim=1) & (contrib < 0).any(dim=1)


def conflict(rewards, group_ids, advantages, config: AggregationConfig) -> AggregationOutput:
    """GD²PO (arXiv 2606.16771), conflict-aware aggregation:

        c_i     = 1 when w_k A_ik > 0 > w_l A_il for some rewards k, l (the rewards disagree on rollout i), else 0
        m_i     = scale if c_i else 1                             scale = 0 drops conflicting rollouts
        rho_g   = 1 - mean_{i in g} c_i                           agreement of prompt g's rewards
        A_sum_i = rho_{g(i)}^beta * m_i * sum_k w_k A_ik

    Options: ``scale`` (in [0, 1], default 0), ``prompt_power`` beta (>= 0, default 1; 0 turns the prompt weight
    off). Decided: conflict is read from the signs of the weighted per-reward advantages (a zero advantage agrees
    with everything); a dropped rollout keeps its place in the batch statistics with A_sum = 0.
    """
    c = sign_conflict(advantages, config.weights)
    cf = c.to(torch.float64)
    size = torch.bincount(group_ids, minlength=config.n_groups).to(torch.float64).clamp(min=1.0)
    rho = 1.0 - _scatter_sum(cf, group_ids, config.n_groups) / size
    m = torch.where(c, torch.full_like(cf, float(config.args.get("scale", 0.0))), torch.ones_like(cf))
    factor = rho.index_select(0, group_ids) ** float(config.args.get("prompt_power", 1.0)) * m
    combined = factor * (advantages @ config.weights)
    return AggregationOutput(combined, config.weights * factor.mean())


def _number(name: str, value: Any, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AggregationError(f"aggregation_args.{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo):
        bound = (f"> {lo:g}" if lo_open else f">= {lo:g}") + (f" and <= {hi:g}" if hi < math.inf else "")
        raise AggregationError(f"aggregation_args.{name} must be finite, {bound}, got {value!r}")
    return x


# name -> (function, {option: validator(value, keys)}); every option has a default in the function
BUILTINS: dict[str, tuple[Any, dict[str, Any]]] = {
    "saturation": (
        saturation,
        {"gamma": lambda v, k: _number("gamma", v, 0.0), "ranges": lambda v, k: ranges(k, v)},
    ),
    "cv": (cv, {"eps": lambda v, k: _number("eps", v, 0.0, lo_open=True)}),
    "group_variance": (group_variance, {"power": lambda v, k: _number("power", v, 0.0, lo_open=True)}),
    "conflict": (
        conflict,
        {
            "scale": lambda v, k: _number("scale", v, 0.0, 1.0),
            "prompt_power": lambda v, k: _number("prompt_power", v, 0.0),
        },
    ),
}
