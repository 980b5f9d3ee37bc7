"""Value assertions on the math that a changed operator must break: each compares with a loop written from the
equation, never only "different from" something."""

from __future__ import annotations

import math

import pytest
import torch
from reference import reference_gdpo

from gdpo_verl.config import GDPOConfig
from gdpo_verl.core import batch_normalize, flat_groups, group_stats, sign_conflict
from gdpo_verl.estimator import compute_gdpo

NAN = float("nan")
ROWS = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, NAN], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [2.0, 0.0]]
INDEX = ["a", "a", "a", "b", "b", "b", "c", "c"]
LENGTHS = torch.tensor([3, 5, 2, 7, 1, 4, 6, 2])


def cfg(**opts) -> GDPOConfig:
    alg = {"gdpo_reward_keys": ["f", "c"], "gdpo_reward_weights": [1.0, 0.5], "gdpo": opts}
    if "use_kl_in_reward" in opts:
        alg["use_kl_in_reward"] = opts.pop("use_kl_in_reward")
    return GDPOConfig.from_algorithm(alg)


def rows(policy_zero: bool = False) -> list[list[float | None]]:
    return [[(0.0 if policy_zero else None) if math.isnan(v) else v for v in r] for r in ROWS]


def test_token_batch_step_is_length_weighted_whitening():
    values = torch.tensor([0.5, -1.0, 2.0, 0.25, -0.75], dtype=torch.float64)
    counted = torch.tensor([True, True, True, False, True])
    lengths = torch.tensor([4, 1, 3, 9, 2])
    eps = 1e-3
    out, mean, std = batch_normalize(values, counted, "token", eps, lengths)
    xs = [(v, n) for v, n, c in zip(values.tolist(), lengths.tolist(), counted.tolist(), strict=True) if c]
    total = sum(n for _, n in xs)
    m = sum(v * n for v, n in xs) / total
    var = sum(n * (v - m) ** 2 for v, n in xs) / (total - 1)
    want = [
        (v - m) / math.sqrt(var + eps * eps) if c else 0.0
        for v, c in zip(values.tolist(), counted.tolist(), strict=True)
    ]
    assert out.tolist() == pytest.approx(want, abs=1e-12)
    assert (mean, std) == pytest.approx((m, math.sqrt(var)), abs=1e-12)


def test_sample_batch_step_value():
    values = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
    counted = torch.tensor([True, True, False, True])
    out, _, _ = batch_normalize(values, counted, "sample", 0.01)
    xs = [0.5, -1.0, 0.25]
    m = sum(xs) / 3
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / 2)
    want = [(0.5 - m) / (s + 0.01), (-1.0 - m) / (s + 0.01), 0.0, (0.25 - m) / (s + 0.01)]
    assert out.tolist() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("mode", ["sample", "token", "none"])
def test_estimator_matches_the_loop_reference(mode):
    out, m = compute_gdpo(torch.tensor(ROWS), INDEX, LENGTHS, cfg(batch_norm=mode))
    if mode == "token":  # the loop reference has no token mode: check it against the batch step on A_sum
        combined = torch.tensor(reference_gdpo(rows(), INDEX, [1.0, 0.5], batch_norm="none"), dtype=torch.float64)
        want, _, _ = batch_normalize(combined, torch.ones(8, dtype=torch.bool), "token", 1e-6, LENGTHS)
        want = want.tolist()
    else:
        want = reference_gdpo(rows(), INDEX, [1.0, 0.5], batch_norm=mode)
    assert out.tolist() == pytest.approx(want, abs=1e-12)


def test_nan_policy_zero_is_missing_as_zero():
    out, m = compute_gdpo(torch.tensor(ROWS), INDEX, LENGTHS, cfg(nan_policy="zero"))
    assert out.tolist() == pytest.approx(reference_gdpo(rows(policy_zero=True), INDEX, [1.0, 0.5]), abs=1e-12)
    assert m["gdpo/c/missing_frac"] == 0.0


def test_nan_policy_exclude_leaves_missing_out():
    out, m = compute_gdpo(torch.tensor(ROWS), INDEX, LENGTHS, cfg())
    assert out.tolist() == pytest.approx(reference_gdpo(rows(), INDEX, [1.0, 0.5]), abs=1e-12)
    assert m["gdpo/c/missing_frac"] == 1 / 8


@pytest.mark.parametrize("kl_weight", [1.0, 0.25, -2.0])
def test_kl_weight_scales_the_kl_term(kl_weight):
    kl = torch.tensor([-0.1, -0.5, 0.0, -0.2, -0.3, 0.4, 0.05, -0.05], dtype=torch.float64)
    out, m = compute_gdpo(
        torch.tensor(ROWS), INDEX, LENGTHS, cfg(use_kl_in_reward=True, kl_weight=kl_weight, batch_norm="none"), kl
    )
    combined = reference_gdpo(rows(), INDEX, [1.0, 0.5], batch_norm="none")
    assert out.tolist() == pytest.approx(
        [a + kl_weight * k for a, k in zip(combined, kl.tolist(), strict=True)], abs=1e-12
    )
    assert m["gdpo/kl/mean"] == pytest.approx(kl_weight * float(kl.mean()), abs=1e-12)


def test_conflict_metric_counts_opposite_signs_only():
    # group a: f differs (+/-), c is flat (A_c = 0): a zero advantage agrees with everything -> no conflict;
    # group b: f up with c down and the reverse -> both rollouts conflict
    comps = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    _, m = compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg())
    assert m["gdpo/conflict/f__c"] == 0.5
    _, m = compute_gdpo(comps[:2], [0, 0], torch.ones(2), cfg())
    assert m["gdpo/conflict/f__c"] == 0.0


def test_sign_conflict_and_flat_groups_values():
    contrib = torch.tensor([[1.0, -2.0], [0.0, -1.0], [0.0, 0.0], [3.0, 0.5], [-1.0, 2.0]])
    assert sign_conflict(contrib).tolist() == [True, False, False, False, True]
    per_reward = torch.tensor([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.0], [0.0, 1.0]])
    flat = flat_groups(per_reward, torch.tensor([0, 0, 1, 2]), 3)
    assert flat.tolist() == [[False, True], [True, True], [True, False]]


def test_group_stats_values():
    r = torch.tensor([[1.0, NAN], [3.0, 2.0], [NAN, 4.0], [5.0, NAN]], dtype=torch.float64)
    count, mean, std = group_stats(r, torch.tensor([0, 0, 0, 1]), 2)
    assert count.tolist() == [[2.0, 2.0], [1.0, 0.0]]
    assert mean.tolist() == [[2.0, 3.0], [5.0, 0.0]]
    assert std.flatten().tolist() == pytest.approx([math.sqrt(2.0), math.sqrt(2.0), 0.0, 0.0])
