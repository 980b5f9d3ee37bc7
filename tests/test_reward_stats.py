"""One definition of the per-reward batch statistics for the GDPO metrics and the other estimators' figures."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from gdpo_verl.reward_stats import per_key_stats


def reference(column: list[float | None]) -> dict[str, float]:
    """The statistics by their textbook definitions (Python's statistics module), over the finite values."""
    xs = [float(v) for v in column if v is not None and math.isfinite(v)]
    return {"mean": statistics.fmean(xs), "std": statistics.pstdev(xs), "min": min(xs), "max": max(xs)} if xs else {}


def test_per_key_stats_match_the_textbook_definitions_and_skip_missing_values():
    rng = np.random.default_rng(3)
    cols = {
        "a": rng.normal(size=40).tolist(),
        "b": [None, 1.0, math.inf, 0.0, -math.inf, math.nan, 2.5] + [0.5] * 33,
        "c": [None] * 40,
    }
    values = np.array([[math.nan if v is None else v for v in col] for col in cols.values()]).T
    out = per_key_stats(list(cols), values)
    expected = {f"gdpo/{k}/{s}": v for k, col in cols.items() for s, v in reference(col).items()}
    assert out.keys() == expected.keys() and not any(k.startswith("gdpo/c/") for k in out)
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_gdpo_metrics_and_other_estimators_figures_are_the_same_numbers():
    """``analyze curves`` compares a GDPO run's gdpo/<key>/* with a GRPO run's: both come from one function."""
    pytest.importorskip("transfer_queue")
    from gdpo_verl_plugins.reward_metrics import component_metrics

    from gdpo_verl.config import GDPOConfig
    from gdpo_verl.estimator import compute_gdpo

    rng = np.random.default_rng(11)
    comps = rng.integers(0, 3, size=(24, 2)).astype(np.float64) / 2
    comps[5, 1] = math.nan
    _, gdpo = compute_gdpo(
        torch.from_numpy(comps),
        torch.arange(24) // 4,
        torch.ones(24),
        GDPOConfig.from_algorithm({"gdpo_reward_keys": ["f", "c"]}),
    )
    other = component_metrics(
        {"f": comps[:, 0].tolist(), "c": [None if math.isnan(v) else v for v in comps[:, 1]]}, None
    )
    assert other == {k: gdpo[k] for k in other} and len(other) == 8
