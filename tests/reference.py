"""A slow, loop-by-loop float64 GDPO written straight from the spec, to check the vectorized one against."""

from __future__ import annotations

import math


def _std(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def reference_gdpo(rewards, index, weights, eps_group=1e-6, eps_batch=1e-6, scale=None, batch_norm="sample"):
    """rewards: list of rows (None = missing). Returns a list of advantages."""
    n, k = len(rewards), len(rewards[0])
    scale = scale or [True] * k
    combined = [0.0] * n
    for col in range(k):
        groups: dict = {}
        for i in range(n):
            if rewards[i][col] is not None:
                groups.setdefault(index[i], []).append(i)
        for rows in groups.values():
            vals = [float(rewards[i][col]) for i in rows]
            if len(vals) < 2 or max(vals) - min(vals) <= 1e-9 * max(1.0, abs(max(vals)), abs(min(vals))):
                continue
            m = sum(vals) / len(vals)
            s = _std(vals) + eps_group if scale[col] else 1.0
            for i, v in zip(rows, vals, strict=True):
                combined[i] += weights[col] * (v - m) / s
    counted = [i for i in range(n) if any(v is not None for v in rewards[i])]
    out = [0.0] * n
    if batch_norm == "none":
        for i in counted:
            out[i] = combined[i]
        return out
    xs = [combined[i] for i in counted]
    m = sum(xs) / len(xs)
    s = _std(xs) if len(xs) > 1 else 0.0
    for i in counted:
        out[i] = (combined[i] - m) / (s + eps_batch)
    return out
