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


# --- every metric of one batch, from loops --------------------------------------------------------------------------
def _group_adv(vals: list[float | None], eps: float = 1e-6) -> list[float]:
    """A_k of one group: z-score with the unbiased std; missing, flat or a single value give 0."""
    xs = [v for v in vals if v is not None]
    if len(xs) < 2 or max(xs) == min(xs):
        return [0.0] * len(vals)
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return [0.0 if v is None else (v - m) / (s + eps) for v in vals]


def _expected_metrics(rows, labels, keys, weights, eps=1e-6):
    n, k = len(rows), len(keys)
    groups: dict = {}
    for i, g in enumerate(labels):
        groups.setdefault(g, []).append(i)
    adv = [[0.0] * k for _ in range(n)]
    for members in groups.values():
        for j in range(k):
            for i, a in zip(members, _group_adv([rows[i][j] for i in members], eps), strict=True):
                adv[i][j] = a
    a_sum = [sum(weights[j] * adv[i][j] for j in range(k)) for i in range(n)]
    counted = [i for i in range(n) if any(v is not None for v in rows[i])]
    m = sum(a_sum[i] for i in counted) / len(counted)
    out = {
        "gdpo/impl": 1.0,
        "gdpo/all_missing_frac": 1 - len(counted) / n,
        "gdpo/batch/mean": m,
        "gdpo/batch/std": math.sqrt(sum((a_sum[i] - m) ** 2 for i in counted) / (len(counted) - 1)),
    }
    total = sum(abs(weights[j] * adv[i][j]) for i in range(n) for j in range(k)) or math.inf
    for j, key in enumerate(keys):
        vals = [r[j] for r in rows if r[j] is not None]
        out[f"gdpo/{key}/missing_frac"] = 1 - len(vals) / n
        out[f"gdpo/{key}/adv_share"] = sum(abs(weights[j] * adv[i][j]) for i in range(n)) / total
        out[f"gdpo/{key}/zero_var_frac"] = sum(
            all(adv[i][j] == 0 for i in members) for members in groups.values()
        ) / len(groups)
        out[f"gdpo/{key}/weight"] = weights[j]
        if vals:
            mu = sum(vals) / len(vals)
            out[f"gdpo/{key}/mean"] = mu
            out[f"gdpo/{key}/std"] = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
            out[f"gdpo/{key}/min"], out[f"gdpo/{key}/max"] = min(vals), max(vals)
            if all(0 <= v <= 1 for v in vals):
                out[f"gdpo/{key}/saturation"] = mu
    for a in range(k):
        for b in range(a + 1, k):
            opposed = [i for i in counted if (weights[a] * adv[i][a]) * (weights[b] * adv[i][b]) < 0]
            out[f"gdpo/conflict/{keys[a]}__{keys[b]}"] = len(opposed) / len(counted)
    # collapse: distinct A_sum values per group of 2+ under GDPO and under GRPO on the weighted raw sum
    multi = [members for members in groups.values() if len(members) >= 2]
    summed = [sum(weights[j] * (rows[i][j] or 0.0) for j in range(k)) for i in range(n)]
    d_gdpo = [len({round(a_sum[i], 6) for i in members}) for members in multi]
    d_grpo = [len({round(a, 6) for a in _group_adv([summed[i] for i in members], eps)}) for members in multi]
    out["gdpo/collapse/distinct_gdpo"] = sum(d_gdpo) / len(multi)
    out["gdpo/collapse/distinct_grpo"] = sum(d_grpo) / len(multi)
    out["gdpo/collapse/grpo_collapsed_frac"] = sum(g < d for g, d in zip(d_grpo, d_gdpo, strict=True)) / len(multi)
    return out


METRIC_ROWS = [  # d has one value, e none
    [1.0, 0.0, 0.2, None, None],
    [0.0, 1.0, 1.7, 0.3, None],
    [1.0, 1.0, None, None, None],
    [0.0, 0.0, 0.9, None, None],
    [None, None, None, None, None],
    [1.0, 0.0, 0.4, None, None],
    [1.0, 1.0, 0.4, None, None],
    [0.0, 1.0, 2.5, None, None],
    [1.0, 0.0, 0.1, None, None],
]
KEYS5 = ["a", "b", "c", "d", "e"]
METRIC_LABELS = ["p", "p", "p", "p", "q", "q", "r", "r", "s"]


@pytest.mark.parametrize(
    "weights", [[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0.5, -2.0, 1.0, 3.0], [0.01, 0.02, 0.0, 1.0, 1.0]]
)
def test_every_metric_of_a_batch(weights):
    keys = KEYS5
    comps = torch.tensor([[NAN if v is None else v for v in r] for r in METRIC_ROWS], dtype=torch.float64)
    c = GDPOConfig.from_algorithm({"gdpo_reward_keys": keys, "gdpo_reward_weights": weights})
    _, got = compute_gdpo(comps, METRIC_LABELS, torch.ones(len(METRIC_ROWS)), c)
    want = _expected_metrics(METRIC_ROWS, METRIC_LABELS, keys, weights)
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_every_metric_of_a_float32_batch_with_tenths():
    # float32 input is read as float64 before any statistic: 0.1 stays float32's 0.1, nothing is computed in float32
    keys = KEYS5
    comps32 = torch.tensor([[NAN if v is None else v for v in r] for r in METRIC_ROWS], dtype=torch.float32)
    rows64 = [[None if math.isnan(v) else v for v in r] for r in comps32.double().tolist()]
    c = GDPOConfig.from_algorithm({"gdpo_reward_keys": keys})
    out, got = compute_gdpo(comps32, METRIC_LABELS, torch.ones(len(METRIC_ROWS)), c)
    assert out.dtype == torch.float64
    want = _expected_metrics(rows64, METRIC_LABELS, keys, [1.0] * 5)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert out.tolist() == pytest.approx(reference_gdpo(rows64, METRIC_LABELS, [1.0] * 5), abs=1e-12)


def test_distinct_per_group_both_paths_and_rounding():
    from gdpo_verl.metrics import distinct_per_group

    gid = torch.tensor([0, 0, 0, 1, 1, 2])
    small = torch.tensor([0.5, 0.5 + 4e-7, 0.5 + 6e-7, -1.0, 2.0, 3.0], dtype=torch.float64)
    assert distinct_per_group(small, gid).tolist() == [2, 2, 1]  # rounded to 6 decimals
    assert distinct_per_group(small, gid, decimals=7).tolist() == [3, 2, 1]
    huge = torch.tensor([1e12, 1e12, -1e12, 5.0, 5.0, 1e12], dtype=torch.float64)  # span * groups >= 2**62
    assert distinct_per_group(huge, gid).tolist() == [2, 1, 1]
    mixed = torch.tensor([3e12, -3e12, 3e12, 7.0, -7.0, 0.0], dtype=torch.float64)
    assert distinct_per_group(mixed, gid).tolist() == [2, 2, 1]


def test_group_index_of_tensors_and_lists():
    from gdpo_verl.core import group_index

    gid, n = group_index(torch.tensor([7, 3, 7, 9]))
    assert (gid.tolist(), n) == ([1, 0, 1, 2], 3)
    gid, n = group_index(["b", "a", "b"])
    assert (gid.tolist(), n, gid.dtype) == ([0, 1, 0], 2, torch.long)
    gid, n = group_index([])
    assert (gid.dtype, n) == (torch.long, 0)


def test_batch_step_with_one_and_two_counted_rollouts():
    one, m, s = batch_normalize(torch.tensor([3.0, 5.0], dtype=torch.float64), torch.tensor([True, False]), "sample")
    assert (one.tolist(), m, s) == ([0.0, 0.0], 3.0, 0.0)
    two, m, s = batch_normalize(torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([True, True]), "sample")
    assert (m, s) == (2.0, math.sqrt(2.0))
    assert two.tolist() == pytest.approx([-1 / (math.sqrt(2.0) + 1e-6), 1 / (math.sqrt(2.0) + 1e-6)], abs=1e-12)
    none, m, s = batch_normalize(torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([True, False]), "none")
    assert (none.tolist(), m, s) == ([1.0, 0.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="batch_norm='token' needs the response lengths"):
        batch_normalize(torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([True, True]), "token")


def test_group_step_defaults_and_float_noise_with_a_missing_value():
    from gdpo_verl.core import group_normalize

    r = torch.tensor([[0.0], [2.0], [0.1 + 0.2], [0.3], [NAN]], dtype=torch.float64)
    out = group_normalize(r, torch.tensor([0, 0, 1, 1, 1]), 2)
    assert out[:, 0].tolist() == pytest.approx([-1 / (math.sqrt(2.0) + 1e-6), 1 / (math.sqrt(2.0) + 1e-6), 0, 0, 0])
    assert out[2:, 0].tolist() == [0.0, 0.0, 0.0]  # 0.1 + 0.2 and 0.3 differ by float noise only: flat


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError, match="the group index has 0 entries for 0 samples"):
        compute_gdpo(torch.zeros(0, 2), [], torch.ones(0), cfg())


def test_metrics_of_a_batch_with_no_signal():
    comps = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    _, m = compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg())
    assert (m["gdpo/f/adv_share"], m["gdpo/c/adv_share"]) == (0.0, 0.0)
    assert (m["gdpo/f/zero_var_frac"], m["gdpo/c/zero_var_frac"]) == (1.0, 1.0)


def test_grpo_collapse_reads_a_missing_reward_as_zero():
    from gdpo_verl.metrics import grpo_collapse

    # group 0: sums 1 + 0 (missing as 0) and 0 + 1 tie under GRPO; GDPO keeps the rollouts apart
    r = torch.tensor([[1.0, NAN], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    gid = torch.tensor([0, 0, 1, 1])
    part = torch.tensor([0.7, -0.7, 1.4, -1.4], dtype=torch.float64)
    d_gdpo, d_grpo = grpo_collapse(r, part, gid, 2, torch.ones(2, dtype=torch.float64), 1e-6)
    assert (d_gdpo.tolist(), d_grpo.tolist()) == ([2.0, 2.0], [1.0, 2.0])


def test_group_step_flat_test_is_relative_to_the_values():
    from gdpo_verl.core import group_normalize

    big = torch.tensor([[1e6], [1e6 + 1e-4]], dtype=torch.float64)  # within 1e-9 of the values: flat
    assert group_normalize(big, torch.tensor([0, 0]), 1)[:, 0].tolist() == [0.0, 0.0]
    small = torch.tensor([[0.5], [0.5 + 1.5e-9]], dtype=torch.float64)  # above 1e-9 absolute for values <= 1
    assert bool((group_normalize(small, torch.tensor([0, 0]), 1) != 0).all())
    r32 = torch.tensor([[0.1], [0.7], [0.3]], dtype=torch.float32)
    r64 = r32.double()
    torch.testing.assert_close(
        group_normalize(r32, torch.tensor([0, 0, 0]), 1),
        group_normalize(r64, torch.tensor([0, 0, 0]), 1),
        rtol=0,
        atol=0,
    )
    want = [(v - r64.mean().item()) / (r64.std().item() + 1e-6) for v in r64[:, 0].tolist()]
    assert group_normalize(r32, torch.tensor([0, 0, 0]), 1)[:, 0].tolist() == pytest.approx(want, abs=1e-12)


def test_core_input_errors_word_for_word():
    from gdpo_verl.core import gdpo_advantages

    with pytest.raises(ValueError) as err:
        gdpo_advantages(torch.zeros(3), [0, 0, 0])
    assert str(err.value) == "rewards must be (batch, n_rewards), got shape (3,)"
    with pytest.raises(ValueError) as err:
        gdpo_advantages(torch.zeros(3, 2), [0, 0])
    assert str(err.value) == "index has 2 entries for 3 samples"
    with pytest.raises(ValueError) as err:
        batch_normalize(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.bool), "token")
    assert str(err.value) == "batch_norm='token' needs the response lengths"
    with pytest.raises(ValueError) as err:
        compute_gdpo(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), torch.ones(0), cfg())
    assert str(err.value) == "GDPO: the group index has 0 entries for 0 samples"


def test_metrics_of_the_papers_gdpo_in_one_call():
    from gdpo_verl.core import gdpo_advantages
    from gdpo_verl.metrics import gdpo_metrics

    res = gdpo_advantages(torch.tensor(ROWS, dtype=torch.float64), INDEX, [1.0, 0.5])
    m = gdpo_metrics(res, ["f", "c"], [1.0, 0.5], 1e-6)
    combined = reference_gdpo(rows(), INDEX, [1.0, 0.5], batch_norm="none")
    mean = sum(combined) / 8
    assert m["gdpo/batch/mean"] == pytest.approx(mean, abs=1e-12)
    assert m["gdpo/batch/std"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in combined) / 7), abs=1e-12)


def test_distinct_per_group_of_an_empty_batch_and_of_float32_values():
    from gdpo_verl.metrics import distinct_per_group

    empty = distinct_per_group(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert (tuple(empty.shape), empty.dtype) == ((0,), torch.long)
    # float32 0.0007775 is 0.000777499983...: 777.49998 after scaling in float64 (777, like 0.000777), but the
    # float32 product rounds up to 777.5 (778). Rounding happens on the float64 value.
    x32 = torch.tensor([0.0007775, 0.000777], dtype=torch.float32)
    assert [round(v * 10**6) for v in x32.tolist()] == [777, 777]
    assert distinct_per_group(x32, torch.tensor([0, 0])).tolist() == [1]


def test_group_stats_of_float32_rewards_are_computed_in_float64():
    # 2**24 + 1 + 1 in float32 is 2**24 (each + 1 rounds away); in float64 it is exact
    r32 = torch.tensor([[16777216.0], [1.0], [1.0]], dtype=torch.float32)
    count, mean, std = group_stats(r32, torch.tensor([0, 0, 0]), 1)
    assert (count.dtype, mean.dtype, std.dtype) == (torch.float64, torch.float64, torch.float64)
    assert (count.item(), mean.item()) == (3.0, 16777218.0 / 3)
    m = 16777218.0 / 3
    want = math.sqrt(((16777216.0 - m) ** 2 + 2 * (1.0 - m) ** 2) / 2)
    assert std.item() == pytest.approx(want, rel=1e-15)


def test_gdpo_advantages_keeps_float32_rewards_as_float64():
    from gdpo_verl.core import gdpo_advantages

    r32 = torch.tensor([[0.1, 1.0], [0.7, 0.0]], dtype=torch.float32)
    res = gdpo_advantages(r32, [0, 0])
    assert res.rewards.dtype == torch.float64
    assert res.rewards.tolist() == r32.double().tolist()


def test_group_step_flat_boundary_and_integer_scale_flags():
    from gdpo_verl.core import group_normalize

    r = torch.tensor([[0.0], [0.5]], dtype=torch.float64)
    gid = torch.tensor([0, 0])
    # range 0.5 <= zero_tol * max(|hi|, |lo|, 1) = 0.5: flat, both 0
    assert group_normalize(r, gid, 1, zero_tol=0.5)[:, 0].tolist() == [0.0, 0.0]
    s = math.sqrt(0.125)  # unbiased std of {0, 0.5}
    got = group_normalize(r, gid, 1, zero_tol=0.4)[:, 0].tolist()
    assert got == pytest.approx([-0.25 / (s + 1e-6), 0.25 / (s + 1e-6)], abs=1e-12)
    # 0/1 integers as the per-column std flags: column 0 divided by its std, column 1 only centred
    two = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    out = group_normalize(two, gid, 1, scale_by_std=torch.tensor([1, 0]))
    want = [-1 / (math.sqrt(2.0) + 1e-6), -1.0, 1 / (math.sqrt(2.0) + 1e-6), 1.0]
    assert out.flatten().tolist() == pytest.approx(want, abs=1e-12)


def test_grpo_collapse_uses_the_given_eps():
    from gdpo_verl.metrics import grpo_collapse

    # sums 1 and 0: z-scores +-0.5 / (0.7071 + eps); eps = 1e9 brings both below 5e-7, which round to the same 0
    r = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    part = torch.tensor([0.5, -0.5], dtype=torch.float64)
    ones = torch.ones(1, dtype=torch.float64)
    _, d_grpo = grpo_collapse(r, part, torch.tensor([0, 0]), 1, ones, 1e9)
    assert d_grpo.tolist() == [1.0]
    _, d_grpo = grpo_collapse(r, part, torch.tensor([0, 0]), 1, ones, 1e-6)
    assert d_grpo.tolist() == [2.0]


def test_metrics_of_one_rollout_and_of_an_empty_batch():
    from gdpo_verl.core import gdpo_advantages
    from gdpo_verl.metrics import gdpo_metrics

    one = gdpo_metrics(gdpo_advantages(torch.tensor([[1.0, NAN]]), ["a"]), ["f", "c"], [1.0, 0.5], 1e-6)
    assert (one["gdpo/f/missing_frac"], one["gdpo/c/missing_frac"], one["gdpo/all_missing_frac"]) == (0.0, 1.0, 0.0)
    empty = gdpo_metrics(gdpo_advantages(torch.zeros(0, 2), []), ["f", "c"], [1.0, 0.5], 1e-6)
    assert empty["gdpo/all_missing_frac"] == 0.0


def test_distinct_per_group_huge_values_keep_their_order_inside_a_group():
    from gdpo_verl.metrics import distinct_per_group

    # 4 interleaved groups of 16, each holding 0, 1e12 and 2e12: span * groups >= 2**62 takes the two-sort path,
    # whose sort by group must keep the value order (an unstable sort splits equal values apart)
    values = torch.tensor([1e12 * ((i * 7) % 3) for i in range(64)], dtype=torch.float64)
    gid = torch.arange(64) % 4
    want = [len({v for v, g in zip(values.tolist(), gid.tolist(), strict=True) if g == k}) for k in range(4)]
    assert want == [3, 3, 3, 3]
    assert distinct_per_group(values, gid).tolist() == want


def test_batch_step_counts_beyond_float32_integers():
    # 2**24 + 1 counted rollouts: the count is exact only in float64 (float32 reads it as 2**24)
    n = 2**24 + 1
    values = torch.zeros(n, dtype=torch.float64)
    values[0] = 1.0
    out, mean, std = batch_normalize(values, torch.ones(n, dtype=torch.bool), "sample")
    assert mean == 1 / n
    assert std == pytest.approx(math.sqrt(1 / n), rel=1e-9)  # (1 - 1/n) / (n - 1) = 1/n
    assert out[0].item() == pytest.approx((1 - 1 / n) / (math.sqrt(1 / n) + 1e-6), rel=1e-9)
