"""Aggregations behind algorithm.gdpo.aggregation: equations against loops, gamma=0 == gdpo, the plug-in slot."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gdpo_verl.aggregations import AggregationError, available
from gdpo_verl.aggregations.options import load_user
from gdpo_verl.config import GDPOConfig, GDPOConfigError
from gdpo_verl.estimator import compute_gdpo

NAN = float("nan")
KEYS = ["fmt", "acc", "len"]


def cfg(aggregation="gdpo", weights=(1.0, 0.5, 2.0), **alg):
    opts = alg.pop("gdpo", {})
    return GDPOConfig.from_algorithm(
        {"gdpo_reward_keys": KEYS, "gdpo_reward_weights": list(weights), "gdpo": {"aggregation": aggregation, **opts}}
        | alg
    )


def batch(seed: int, b: int = 96, g: int = 8, missing: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 2, (b, 3), generator=gen).double()
    r[:, 2] = torch.rand(b, generator=gen, dtype=torch.float64)  # a fractional reward
    r[torch.rand(b, 3, generator=gen) < missing] = NAN
    index = [i // g for i in range(b)]
    lengths = torch.randint(1, 50, (b,), generator=gen)
    kl = -torch.rand(b, generator=gen, dtype=torch.float64)
    return r, index, lengths, kl


def run(c, seed=0, **kw):
    r, index, lengths, kl = batch(seed, **kw)
    return compute_gdpo(r, index, lengths, c, kl if c.use_kl_in_reward else None)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "alg",
    [
        {},
        {"gdpo": {"batch_norm": "token", "conditions": {"len": {"on": "acc", "threshold": 1.0}}}},
        {"use_kl_in_reward": True, "gdpo": {"batch_norm": "none", "std_norm": {"fmt": False}}},
    ],
)
def test_saturation_with_gamma_zero_is_gdpo_exactly(seed, alg):
    base, mb = run(cfg(**alg), seed)
    opts = alg.get("gdpo", {})
    sat = cfg("saturation", **{**alg, "gdpo": {**opts, "aggregation_args": {"gamma": 0.0}}})
    out, ms = run(sat, seed)
    assert torch.equal(out, base)
    assert all(ms[k] == mb[k] for k in mb if not k.startswith("gdpo/") or "/saturation" not in k)


def _loop_weights(r: torch.Tensor, fn) -> list[float]:
    cols = [[float(v) for v in r[:, k] if not math.isnan(float(v))] for k in range(r.shape[1])]
    return [fn(c) for c in cols]


def _expected(name: str, args: dict, weights, r, index):
    """A_sum from a plain loop over the docstring equations; per_reward from the default estimator."""
    from gdpo_verl.core import gdpo_advantages

    res = gdpo_advantages(r, index, weights)
    a = res.per_reward.tolist()
    b, k = r.shape
    w = list(weights)
    if name == "saturation":
        gamma = args.get("gamma", 1.0)
        s = _loop_weights(r, lambda c: min(max(sum(c) / len(c), 0.0), 1.0))
        eff = [w[j] * (1 - s[j]) ** gamma for j in range(k)]
        return [sum(eff[j] * a[i][j] for j in range(k)) for i in range(b)], eff
    if name == "cv":

        def coef(c):  # ranges default to [0, 1]: no shift
            m = sum(c) / len(c)
            return math.sqrt(sum((x - m) ** 2 for x in c) / (len(c) - 1)) / (abs(m) + 1e-8)

        cvs = _loop_weights(r, coef)
        eff = [w[j] * k * cvs[j] / (sum(cvs) + 1e-8) for j in range(k)]
        return [sum(eff[j] * a[i][j] for j in range(k)) for i in range(b)], eff
    groups: dict = {}
    for i, g in enumerate(index):
        groups.setdefault(g, []).append(i)
    if name == "group_variance":
        out = [0.0] * b
        for rows in groups.values():
            sig = []
            for j in range(k):
                vals = [float(r[i, j]) for i in rows if not math.isnan(float(r[i, j]))]
                m = sum(vals) / max(len(vals), 1)
                sig.append(math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) >= 2 else 0.0)
            tot = sum(sig)
            for i in rows:
                out[i] = sum(w[j] * (k * sig[j] / tot if tot > 0 else 1.0) * a[i][j] for j in range(k))
        return out, None
    beta, tau = args.get("prompt_power", 1.0), args.get("ratio_threshold", 0.2)
    conflict = []
    for i in range(b):
        c = [w[j] * a[i][j] for j in range(k)]
        opposed = any(x > 0 for x in c) and any(x < 0 for x in c)
        near_zero = abs(sum(c)) / (sum(abs(x) for x in c) + 1e-8) < tau
        conflict.append(opposed and (near_zero or args.get("mode", "hard") == "hard"))
    out = [0.0] * b
    for rows in groups.values():
        rho = 1 - sum(conflict[i] for i in rows) / len(rows)
        for i in rows:
            out[i] = 0.0 if conflict[i] else rho**beta * sum(w[j] * a[i][j] for j in range(k))
    return out, None


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("saturation", {"gamma": 2.0}),
        ("saturation", {}),
        ("cv", {}),
        ("group_variance", {}),
        ("conflict", {}),
        ("conflict", {"mode": "ratio", "ratio_threshold": 0.5, "prompt_power": 2.0}),
    ],
)
def test_builtins_follow_their_equations(name, args):
    from gdpo_verl.aggregations import AggregationConfig, resolve
    from gdpo_verl.aggregations.options import check_options
    from gdpo_verl.core import gdpo_advantages, group_index

    r, index, _, _ = batch(7)
    weights = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    res = gdpo_advantages(r, index, weights)
    gid, n = group_index(index)
    full = check_options(name, args, tuple(KEYS))
    out = resolve(name)(r, gid, res.per_reward, AggregationConfig(tuple(KEYS), weights, full, n))
    want, eff = _expected(name, args, weights, r, index)
    torch.testing.assert_close(out.combined, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    if eff is not None:
        torch.testing.assert_close(out.weights, torch.tensor(eff, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_conflict_with_no_penalty_is_gdpo_and_changes_otherwise():
    base, _ = run(cfg())
    off = {"mode": "ratio", "ratio_threshold": 0.0, "prompt_power": 0.0}  # |ratio| < 0 drops nothing
    same, _ = run(cfg("conflict", gdpo={"aggregation_args": off}))
    assert torch.equal(same, base)
    dropped, _ = run(cfg("conflict"))
    assert not torch.allclose(dropped, base) and torch.isfinite(dropped).all()


def test_metrics_weight_saturation_and_conflict():
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    c = GDPOConfig.from_algorithm(
        {"gdpo_reward_keys": ["a", "b"], "gdpo": {"aggregation": "saturation", "aggregation_args": {"gamma": 1.0}}}
    )
    _, m = compute_gdpo(r.clone(), [0, 0, 1, 1], torch.ones(4), c)
    assert m["gdpo/a/saturation"] == 0.5 and m["gdpo/b/saturation"] == 0.5
    assert m["gdpo/a/weight"] == 0.5 and m["gdpo/b/weight"] == 0.5
    # group 0: (1,0) vs (0,1) -> both rollouts have opposite-sign advantages; group 1 agrees
    assert m["gdpo/conflict/a__b"] == 0.5
    _, plain = compute_gdpo(r, [0, 0, 1, 1], torch.ones(4), GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a", "b"]}))
    assert plain["gdpo/a/weight"] == 1.0 and plain["gdpo/conflict/a__b"] == 0.5


def test_saturation_needs_the_range_of_a_reward_outside_zero_one():
    r = torch.tensor([[3.0, 0.0], [-3.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    alg = {"gdpo_reward_keys": ["corr", "fmt"], "gdpo": {"aggregation": "saturation"}}
    with pytest.raises(AggregationError, match=r"'corr'.*aggregation_args\.ranges\.corr"):
        compute_gdpo(r, [0, 0, 1, 1], torch.ones(4), GDPOConfig.from_algorithm(alg))
    alg["gdpo"]["aggregation_args"] = {"ranges": {"corr": [-3, 3]}}
    _, m = compute_gdpo(r, [0, 0, 1, 1], torch.ones(4), GDPOConfig.from_algorithm(alg))
    assert m["gdpo/corr/saturation"] == pytest.approx((0.25 + 3) / 6)


@pytest.mark.parametrize(
    ("gdpo", "message"),
    [
        ({"aggregation": "sat"}, r"unknown aggregation 'sat'; available: \['gdpo', 'saturation', 'cv'"),
        (
            {"aggregation": "cv", "aggregation_args": {"gamma": 1}},
            r"no option\(s\) \['gamma'\]; its options: \['eps', 'ranges'\]",
        ),
        ({"aggregation": "gdpo", "aggregation_args": {"gamma": 1}}, r"no option\(s\) \['gamma'\]; its options: none"),
        ({"aggregation": "conflict", "aggregation_args": {"prompt_power": -1}}, r"prompt_power must be >= 0, got -1"),
        ({"aggregation": "saturation", "aggregation_args": {"ranges": {"x": [0, 1]}}}, r"names \['x'\]"),
        ({"aggregation": "no_such_module_xyz:fn"}, r"cannot load 'fn' from 'no_such_module_xyz'"),
    ],
)
def test_bad_names_and_options_are_config_errors(gdpo, message):
    with pytest.raises(GDPOConfigError, match=message):
        cfg(gdpo=gdpo)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "aggregations"
RANK = textwrap.dedent("""
    from rank_aggregation import rank

    def bad_shape(rewards, group_ids, advantages, config):
        return advantages

    def bad_values(rewards, group_ids, advantages, config):
        return advantages.sum(1) / 0.0
""")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_aggs.py").write_text(RANK)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("my_aggs", None)
    sys.modules.pop("rank_aggregation", None)


def test_user_aggregation_by_module_function(user_module):
    out, m = run(cfg("my_aggs:rank", gdpo={"aggregation_args": {"scale": 2.0}}))
    base, _ = run(cfg())
    assert torch.isfinite(out).all() and not torch.allclose(out, base)
    assert m["gdpo/fmt/weight"] == 1.0


def test_user_aggregation_by_entry_point(user_module):
    dist = user_module / "my_aggs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-aggs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gdpo_verl.aggregations]\nrank = my_aggs:rank\n")
    assert "rank" in available()
    by_entry, _ = run(cfg("rank"))
    by_path, _ = run(cfg("my_aggs:rank"))
    assert torch.equal(by_entry, by_path)


def test_an_entry_point_that_fails_to_load_names_itself_and_its_error(user_module):
    dist = user_module / "broken_aggs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-aggs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gdpo_verl.aggregations]\nbroken = no_such_module_xyz:fn\n")
    with pytest.raises(GDPOConfigError) as info:
        cfg("broken")
    assert str(info.value) == (
        "algorithm.gdpo.aggregation='broken': aggregation 'broken': entry point 'no_such_module_xyz:fn' failed to "
        "load: No module named 'no_such_module_xyz'"
    )
    with pytest.raises(AggregationError) as direct:
        load_user("broken")
    assert isinstance(direct.value.__cause__, ModuleNotFoundError)  # the traceback keeps the user's error


def test_the_package_lends_its_torch_names_and_refuses_others():
    import gdpo_verl.aggregations as aggs
    from gdpo_verl.aggregations import base, builtins

    assert aggs.AggregationOutput is base.AggregationOutput and aggs.resolve is builtins.resolve
    with pytest.raises(AttributeError) as info:
        aggs.no_such_name  # noqa: B018
    assert str(info.value) == "module 'gdpo_verl.aggregations' has no attribute 'no_such_name'"


@pytest.mark.parametrize(
    ("fn", "message"), [("bad_shape", r"shape \(96, 3\), expected \(96,\)"), ("bad_values", "non-finite")]
)
def test_user_aggregation_results_are_checked(user_module, fn, message):
    with pytest.raises(AggregationError, match=message):
        run(cfg(f"my_aggs:{fn}"))


def _agg(name, comps, index, weights=(1.0, 1.0), batch_norm="none", **args):
    c = GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": ["a", "b"],
            "gdpo_reward_weights": list(weights),
            "gdpo": {"aggregation": name, "aggregation_args": args, "batch_norm": batch_norm},
        }
    )
    return compute_gdpo(torch.tensor(comps, dtype=torch.float64), index, torch.ones(len(index)), c)


def test_conflict_ratio_threshold_is_strict_and_uses_its_epsilon():
    # equal weights, a = [1, 0], b = [0, 1]: each rollout's weighted advantages cancel exactly (ratio 0)
    comps, index = [[1, 0], [0, 1], [1, 1], [0, 0]], [0, 0, 1, 1]
    out, _ = _agg("conflict", comps, index, batch_norm="sample", mode="ratio", ratio_threshold=0.0)
    base, _ = _agg("gdpo", comps, index, batch_norm="sample")
    assert torch.equal(out, base)  # |ratio| < 0 drops nothing (a dropped rollout would leave the batch statistics)
    # weights 3 : 1 give |3x - x| / (3x + x + 1e-8), just under 0.5: dropped at tau = 0.5
    out, m = _agg(
        "conflict", [[1, 0], [0, 1], [1, 1], [0, 0]], [0, 0, 1, 1], (3.0, 1.0), mode="ratio", ratio_threshold=0.5
    )
    x = 0.5 / (0.5**0.5 + 1e-6)
    assert out.tolist() == pytest.approx([0.0, 0.0, 4 * x, -4 * x], abs=1e-12)
    # the kept share of group 0 is 0 and of group 1 is 1: the logged weights are w * mean(rho of kept, 0 of dropped)
    assert (m["gdpo/a/weight"], m["gdpo/b/weight"]) == pytest.approx((3.0 * 0.5, 1.0 * 0.5))


def test_conflict_scales_kept_rollouts_by_their_groups_kept_share():
    # group 0: rollouts 0, 1 conflict, 2 agrees (kept share 1/3); group 1 all agree
    comps = [[1, 0], [0, 1], [1, 1], [1, 1], [0, 0], [1, 1]]
    out, _ = _agg("conflict", comps, [0, 0, 0, 1, 1, 1], prompt_power=2.0)
    plain, _ = _agg("gdpo", comps, [0, 0, 0, 1, 1, 1])
    assert out[:2].tolist() == [0.0, 0.0]
    assert float(out[2]) == pytest.approx(float(plain[2]) / 9, abs=1e-12)
    assert out[3:].tolist() == pytest.approx(plain[3:].tolist(), abs=1e-12)


def test_group_variance_power_and_small_spreads():
    # group 0: a = [0, 0.2] (sigma 0.1414), b = [0, 0.1] (sigma 0.0707); total < 1
    comps = [[0.0, 0.0], [0.2, 0.1], [1.0, 0.0], [0.0, 0.0]]
    out, m = _agg("group_variance", comps, [0, 0, 1, 1], (1.0, 2.0), power=2.0)
    sa, sb = 0.2**2 / 2, 0.1**2 / 2  # sigma^2 per reward in group 0
    fa, fb = 2 * sa / (sa + sb), 2 * sb / (sa + sb)
    a0 = 0.1 / (0.2 / 2**0.5 + 1e-6)
    b0 = 0.05 / (0.1 / 2**0.5 + 1e-6)
    a1 = 0.5 / (1 / 2**0.5 + 1e-6)
    want = [-(fa * a0 + 2 * fb * b0), fa * a0 + 2 * fb * b0, 2 * a1, -2 * a1]  # group 1: only a varies (factor 2)
    assert out.tolist() == pytest.approx(want, abs=1e-9)
    assert m["gdpo/a/weight"] == pytest.approx((2 * fa + 2 * 2.0) / 4)  # mean over rollouts of w_a * factor
    assert m["gdpo/b/weight"] == pytest.approx((2 * 2.0 * fb + 0.0) / 4)


def test_saturation_keeps_the_weight_of_an_all_missing_reward():
    _, m = _agg("saturation", [[1, NAN], [0, NAN], [1, NAN], [1, NAN]], [0, 0, 1, 1], (2.0, 3.0), gamma=2.0)
    assert m["gdpo/b/weight"] == 3.0 and "gdpo/b/saturation" not in m
    assert m["gdpo/a/saturation"] == 0.75 and m["gdpo/a/weight"] == pytest.approx(2.0 * 0.25**2)
    _, m = _agg("saturation", [[1, NAN], [0, NAN], [1, 0.4], [1, NAN]], [0, 0, 1, 1], gamma=1.0)
    assert m["gdpo/b/saturation"] == pytest.approx(0.4) and m["gdpo/b/weight"] == pytest.approx(0.6)


def test_range_error_names_the_reward_outside_its_range():
    with pytest.raises(AggregationError) as err:
        _agg("cv", [[0.5, 2.0], [0.5, 0.0]], [0, 0], ranges={"a": [0, 1]})
    assert str(err.value) == (
        "aggregation cv: reward 'b' has values outside its range [0, 1]; declare it: aggregation_args.ranges.b=[lo,hi]"
    )


def test_gdpo_saturation_metric_only_for_rewards_inside_zero_one():
    _, m = _agg("gdpo", [[0.0, 2.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.5]], [0, 0, 1, 1])
    assert m["gdpo/a/saturation"] == 0.5 and "gdpo/b/saturation" not in m
    _, m = _agg("gdpo", [[0.0, -0.5], [1.0, 0.0], [1.0, 1.0], [0.0, 0.5]], [0, 0, 1, 1])
    assert "gdpo/b/saturation" not in m


def _user(fn):
    import types

    mod = types.ModuleType("gdpo_user_aggs_test")
    mod.fn = fn
    sys.modules["gdpo_user_aggs_test"] = mod
    return cfg("gdpo_user_aggs_test:fn")


def test_user_aggregation_float32_result_and_kept_checks():
    from gdpo_verl.aggregations import AggregationOutput

    r, index, lengths, _ = batch(3)
    out, _ = compute_gdpo(r, index, lengths, _user(lambda r, g, a, c: (a @ c.weights).float()))
    base, _ = compute_gdpo(r, index, lengths, cfg())
    assert out.dtype == torch.float64 and torch.allclose(out, base, atol=1e-5)
    bad = _user(lambda r, g, a, c: AggregationOutput(a @ c.weights, kept=torch.ones(3, dtype=torch.bool)))
    with pytest.raises(AggregationError) as err:
        compute_gdpo(r, index, lengths, bad)
    assert str(err.value) == "aggregation 'gdpo_user_aggs_test:fn' returned kept that is not a (B,) = (96,) tensor"
    bad = _user(lambda r, g, a, c: AggregationOutput(a @ c.weights, kept=[True] * 96))
    with pytest.raises(AggregationError, match="returned kept that is not a"):
        compute_gdpo(r, index, lengths, bad)
    with pytest.raises(AggregationError) as err:
        compute_gdpo(r, index, lengths, _user(lambda r, g, a, c: [0.0] * 96))
    assert str(err.value) == "aggregation 'gdpo_user_aggs_test:fn' returned list, expected a (B,) tensor"
    keep_half = _user(lambda r, g, a, c: AggregationOutput(a @ c.weights, kept=torch.arange(96) % 2 == 0))
    out, _ = compute_gdpo(r, index, lengths, keep_half)
    assert bool((out[1::2] == 0).all()) and bool((out[::2] != 0).any())


def test_cv_reads_a_fractional_range_in_float64():
    comps = [[0.15, 0.0], [0.95, 1.0], [0.35, 1.0], [0.55, 0.0]]
    _, m = _agg("cv", comps, [0, 0, 1, 1], ranges={"a": [0.1, 1.1]})
    shifted = [v[0] - 0.1 for v in comps]
    mu = sum(shifted) / 4
    cv_a = math.sqrt(sum((x - mu) ** 2 for x in shifted) / 3) / (abs(mu) + 1e-8)
    cv_b = math.sqrt(sum((v[1] - 0.5) ** 2 for v in comps) / 3) / (0.5 + 1e-8)
    assert m["gdpo/a/weight"] == pytest.approx(2 * cv_a / (cv_a + cv_b + 1e-8), abs=1e-14)


def test_group_variance_keeps_the_weights_of_a_flat_group():
    # group 1 is flat in both rewards: its rollouts keep w_k (factor 1) in the logged mean weight
    _, m = _agg("group_variance", [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [0, 0, 1, 1], (2.0, 3.0))
    assert (m["gdpo/a/weight"], m["gdpo/b/weight"]) == pytest.approx(((2 * 2.0 * 2 + 2.0 * 2) / 4, (0 + 3.0 * 2) / 4))


def test_a_zero_weight_reward_never_conflicts():
    _, m = _agg("gdpo", [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], [0, 0, 1, 1], (1.0, 0.0))
    assert m["gdpo/conflict/a__b"] == 0.0


def test_user_aggregation_dtype_and_kept_as_numbers():
    from gdpo_verl.aggregations import AggregationOutput

    r, index, lengths, _ = batch(3)
    with pytest.raises(AggregationError) as err:
        compute_gdpo(r, index, lengths, _user(lambda r, g, a, c: (a @ c.weights).to(torch.complex128)))
    assert (
        str(err.value) == "aggregation 'gdpo_user_aggs_test:fn' returned dtype torch.complex128, expected a real dtype"
    )
    as_ints = _user(lambda r, g, a, c: AggregationOutput(a @ c.weights, kept=(torch.arange(96) % 2 == 0).long()))
    as_bools = _user(lambda r, g, a, c: AggregationOutput(a @ c.weights, kept=torch.arange(96) % 2 == 0))
    torch.testing.assert_close(
        compute_gdpo(r, index, lengths, as_ints)[0], compute_gdpo(r, index, lengths, as_bools)[0]
    )


def test_conflict_share_of_a_singleton_group_is_one():
    # the singleton's advantages are 0: it never conflicts and its group keeps all (1 of 1) -> factor 1
    _, m = _agg("conflict", [[1, 0], [0, 1], [1, 1]], [0, 0, 1])
    assert (m["gdpo/a/weight"], m["gdpo/b/weight"]) == pytest.approx((1 / 3, 1 / 3))


def test_kept_given_as_integers_is_read_as_a_mask():
    from gdpo_verl.aggregations.base import AggregationOutput, check_output

    raw = AggregationOutput(torch.tensor([1.5, 2.0, 3.0]), kept=torch.tensor([1, 0, 1]))
    out = check_output("mine", raw, 3, torch.tensor([True, True, False]))
    assert (out.kept.dtype, out.kept.tolist()) == (torch.bool, [True, False, False])
    assert out.combined.tolist() == [1.5, 0.0, 0.0]


def _conflict_config(n_groups: int, k: int = 2):
    from gdpo_verl.aggregations.base import AggregationConfig

    args = {"mode": "hard", "ratio_threshold": 0.2, "prompt_power": 1.0}
    return AggregationConfig(tuple("ab"[:k]), torch.ones(k, dtype=torch.float64), args, n_groups)


def test_conflict_with_a_group_without_rollouts():
    from gdpo_verl.aggregations.builtins import conflict

    # group 0: both rollouts disagree (dropped, rho 0); group 1 agrees (rho 1); group 2 has no rollout
    adv = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    out = conflict(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1]), adv, _conflict_config(3))
    assert out.combined.tolist() == [0.0, 0.0, 2.0, -2.0]
    assert (out.kept.tolist(), out.weights.tolist()) == ([False, False, True, True], [0.5, 0.5])


def test_conflict_group_share_of_a_group_beyond_float32_integers():
    from gdpo_verl.aggregations.builtins import conflict

    # one group of 2**24 + 1 rollouts, all kept: rho = kept / size = 1 exactly (a float32 size reads 2**24); the
    # rewards are not read
    n = 2**24 + 1
    out = conflict(
        None, torch.zeros(n, dtype=torch.long), torch.ones(n, 1, dtype=torch.float64), _conflict_config(1, 1)
    )
    assert out.weights.tolist() == [1.0]
    assert bool((out.combined == 1.0).all())
