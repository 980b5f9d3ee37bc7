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
    # one memory layout, so every caller's sums run in the same order and give the same bits
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.float64).reshape(-1, len(keys)))
    finite = np.isfinite(arr)
    count = finite.sum(axis=0)
    per = np.maximum(count, 1)
    mean = np.where(finite, arr, 0.0).sum(axis=0) / per
    std = np.sqrt((np.where(finite, arr - mean, 0.0) ** 2).sum(axis=0) / per)
    low = np.where(finite, arr, np.inf).min(axis=0, initial=np.inf)
    high = np.where(finite, arr, -np.inf).max(axis=0, initial=-np.inf)
    table = np.stack([mean, std, low, high]).tolist()  # (stat, key), one conversion to Python floats
    return {f"gdpo/{key}/{stat}": table[s][k] for k, key in enumerate(keys) if count[k] for s, stat in enumerate(STATS)}
