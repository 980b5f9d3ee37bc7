"""Per-reward batch statistics ``gdpo/<key>/{mean,std,min,max}``: one implementation for the GDPO metrics
(:mod:`gdpo_verl.metrics`) and the per-reward figures logged for other estimators
(``gdpo_verl_plugins.reward_metrics``), so ``gdpo-verl analyze curves`` compares a GDPO and a GRPO run on the same
definition. Torch-free (numpy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

STATS = ("mean", "std", "min", "max")


def per_key_stats(keys: Sequence[str], values: Any) -> dict[str, float]:
    """``gdpo/<key>/<stat>`` for each column of ``values`` (rows x len(keys), any array-like of numbers, NaN for a
    missing value) over its finite values; ``std`` is the population one. A key without a finite value gives none."""
    # one key per contiguous row: every caller's sums run in the same (pairwise) order and give the same bits
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1, len(keys)).T)
    finite = np.isfinite(arr)
    count = finite.sum(axis=1)
    if count.sum() < arr.size:  # missing values: 0 in the sums, out of min / max
        low, high = np.where(finite, arr, np.inf), np.where(finite, arr, -np.inf)
        arr = np.where(finite, arr, 0.0)
    else:
        low = high = arr
    per = np.maximum(count, 1)
    mean = arr.sum(axis=1) / per
    centered = np.where(finite, arr - mean[:, None], 0.0)
    std = np.sqrt(np.einsum("ij,ij->i", centered, centered) / per)
    low, high = low.min(axis=1, initial=np.inf), high.max(axis=1, initial=-np.inf)
    table = np.stack([mean, std, low, high]).tolist()  # (stat, key), one conversion to Python floats
    return {f"gdpo/{key}/{stat}": table[s][k] for k, key in enumerate(keys) if count[k] for s, stat in enumerate(STATS)}
