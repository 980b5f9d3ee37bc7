"""An independent float64 GDPO for the GPU regression's exact check: plain Python (math only), written from the
paper's equations (arXiv 2601.05242, Eqs. 4-8) and docs/ of this project, sharing no code with gdpo_verl (no import
of it, no torch), so a mistake in the estimator cannot cancel out in the check.

    r_k  := r_k if r_gate >= t else 0                        Eq. 8 (conditions; a missing gate or target stays missing)
    A_k   = (r_k - mean_g r_k) / (std_g r_k + eps_group)     Eq. 4 (unbiased std; 0 for a flat group, a group of one,
                                                             a missing value; no std division where std_norm is off)
    A_sum = sum_k w_k A_k  (+ kl_weight * KL shaping)        Eqs. 5/7 (a non-finite KL term is dropped)
    A     = (A_sum - mean_b) / (std_b + eps_batch)           Eq. 6 over the samples with any reward present
            token mode: length-weighted mean/variance, (A_sum - mean) / sqrt(var + eps_batch^2); none: A_sum

Only the settings the regression runs are covered (aggregation `gdpo`, constant weights); anything else is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

FLAT_TOL = 1e-9  # a group whose values span less than this (relative to their size) is flat: A_k = 0


class Unsupported(ValueError):
    pass


def _missing(x: float) -> bool:
    return x is None or not math.isfinite(x)


def _mean_std(values: Sequence[float], weights: Sequence[float] | None = None) -> tuple[float, float]:
    w = list(weights) if weights is not None else [1.0] * len(values)
    total = sum(w)
    mean = sum(wi * v for wi, v in zip(w, values, strict=True)) / max(total, 1.0)
    var = sum(wi * (v - mean) ** 2 for wi, v in zip(w, values, strict=True)) / max(total - 1.0, 1.0)
    return mean, var


def advantages(
    rows: Sequence[Sequence[float | None]],
    groups: Sequence[Any],
    lengths: Sequence[float],
    settings: Mapping[str, Any],
    kl: Sequence[float | None] | None = None,
) -> list[float]:
    """rows[i][k]: reward k of sample i in settings['reward_keys'] order (None/NaN/inf = missing)."""
    keys = list(settings["reward_keys"])
    if settings.get("aggregation", "gdpo") != "gdpo" or settings.get("weight_schedule"):
        raise Unsupported("the reference covers aggregation=gdpo with constant weights only")
    weights = [float(w) for w in settings["weights"]]
    std_norm = list(settings.get("std_norm") or [True] * len(keys))
    eps_g, eps_b = float(settings["eps_group"]), float(settings["eps_batch"])
    n = len(rows)
    r = [[None if _missing(v) else float(v) for v in row] for row in rows]
    if settings.get("nan_policy", "exclude") == "zero":
        r = [[0.0 if v is None else v for v in row] for row in r]
    gated = [list(row) for row in r]
    for cond in settings.get("conditions", ()):
        t, g = keys.index(cond["target"]), keys.index(cond["on"])
        for i in range(n):
            if r[i][g] is None or r[i][t] is None:
                gated[i][t] = None
            else:
                gated[i][t] = r[i][t] if r[i][g] >= float(cond["threshold"]) else 0.0
    combined = [0.0] * n
    for k in range(len(keys)):
        members: dict[Any, list[int]] = {}
        for i in range(n):
            if gated[i][k] is not None:
                members.setdefault(groups[i], []).append(i)
        for idx in members.values():
            vals = [gated[i][k] for i in idx]
            hi, lo = max(vals), min(vals)
            if len(vals) < 2 or hi - lo <= FLAT_TOL * max(abs(hi), abs(lo), 1.0):
                continue
            mean, var = _mean_std(vals)
            denom = math.sqrt(var) + eps_g if std_norm[k] else 1.0
            for i, v in zip(idx, vals, strict=True):
                combined[i] += weights[k] * (v - mean) / denom
    if settings.get("use_kl_in_reward"):
        if kl is None:
            raise Unsupported("use_kl_in_reward needs the KL shaping per sample")
        for i in range(n):
            if not _missing(kl[i]):
                combined[i] += float(settings.get("kl_weight", 1.0)) * float(kl[i])
    counted = [i for i in range(n) if any(v is not None for v in gated[i])]
    mode = settings.get("batch_norm", "sample")
    out = [0.0] * n
    if mode == "none" or not counted:
        for i in counted:
            out[i] = combined[i]
        return out
    values = [combined[i] for i in counted]
    if mode == "sample":
        mean, var = _mean_std(values)
        for i in counted:
            out[i] = (combined[i] - mean) / (math.sqrt(var) + eps_b)
    elif mode == "token":
        mean, var = _mean_std(values, [float(lengths[i]) for i in counted])
        for i in counted:
            out[i] = (combined[i] - mean) / math.sqrt(var + eps_b * eps_b)
    else:
        raise Unsupported(f"batch_norm={mode!r}")
    return out
