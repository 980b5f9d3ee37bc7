"""compute_gdpo: NaN policy, KL-in-reward modes, token broadcast, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from gdpo_verl import estimator
from gdpo_verl.config import GDPOConfig, GDPOConfigError
from gdpo_verl.estimator import MissingRewardError, compute_gdpo, to_tokens
from gdpo_verl.metrics import distinct_per_group

NAN = float("nan")


def cfg(**opts):
    alg = {"gdpo_reward_keys": ["format", "correct"], "gdpo": opts}
    if "use_kl_in_reward" in opts:
        alg["use_kl_in_reward"] = opts.pop("use_kl_in_reward")
    return GDPOConfig.from_algorithm(alg)


COMPONENTS = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, NAN], [0.0, 1.0], [1.0, 1.0]])
INDEX = ["a", "a", "a", "b", "b", "b"]
LENGTHS = torch.tensor([3, 5, 2, 7, 1, 4])


def test_nan_policies():
    excl, metrics = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg())
    assert torch.isfinite(excl).all()
    assert metrics["gdpo/correct/missing_frac"] == pytest.approx(1 / 6)
    assert metrics["gdpo/format/missing_frac"] == 0.0
    zero, _ = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(nan_policy="zero"))
    assert not torch.allclose(zero, excl)
    with pytest.raises(MissingRewardError, match=r"\{'correct': 1\}"):
        compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(nan_policy="error"))


def test_infinite_reward_counts_as_missing():
    comps = COMPONENTS.clone()
    comps[0, 0] = float("inf")
    out, metrics = compute_gdpo(comps, INDEX, LENGTHS, cfg())
    assert torch.isfinite(out).all() and metrics["gdpo/format/missing_frac"] > 0


def test_kl_in_reward_is_never_dropped():
    kl = torch.tensor([-0.1, -0.5, 0.0, -0.2, -0.3, 0.0])
    base, _ = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg())
    raw, metrics = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(use_kl_in_reward=True), kl)
    assert not torch.allclose(raw, base)
    assert metrics["gdpo/kl/mean"] == pytest.approx(float(kl.mean())) and metrics["gdpo/kl/nonfinite_frac"] == 0.0
    with pytest.raises(ValueError, match="no KL shaping"):
        compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(use_kl_in_reward=True))


@pytest.mark.parametrize("bad", [float("-inf"), float("inf"), NAN])
def test_nonfinite_kl_is_missing_for_its_rollout_only(bad, caplog):
    kl = torch.tensor([-0.1, -0.5, 0.0, -0.2, -0.3, 0.0], dtype=torch.float64)
    broken = kl.clone()
    broken[1] = bad
    estimator._warned.clear()
    with caplog.at_level("WARNING", logger="gdpo_verl"):
        out, m = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(use_kl_in_reward=True), broken)
        compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(use_kl_in_reward=True), broken)
    assert torch.isfinite(out).all() and bool((out != 0).any())
    # same as that rollout having no KL term at all
    dropped = kl.clone()
    dropped[1] = 0.0
    expected, _ = compute_gdpo(COMPONENTS, INDEX, LENGTHS, cfg(use_kl_in_reward=True), dropped)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert m["gdpo/kl/nonfinite_frac"] == pytest.approx(1 / 6)
    assert m["gdpo/kl/mean"] == pytest.approx(float(kl[[0, 2, 3, 4, 5]].mean()))
    assert math.isfinite(m["gdpo/batch/std"])
    assert sum("non-finite KL" in r.getMessage() for r in caplog.records) == 1


def test_kl_in_reward_component_mode_was_removed():
    with pytest.raises(GDPOConfigError, match="kl_in_reward=component was removed.*kl_in_reward=raw"):
        cfg(use_kl_in_reward=True, kl_in_reward="component")


def test_collapse_metrics_ignore_the_kl_term():
    # every reward is flat inside its group: no reward signal, whatever the KL term does
    comps = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    kl = torch.tensor([-0.1, -0.4, -0.2, 0.3])
    _, m = compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg(use_kl_in_reward=True), kl)
    assert m["gdpo/collapse/distinct_gdpo"] == 1.0
    assert m["gdpo/collapse/grpo_collapsed_frac"] == 0.0


def test_to_tokens_broadcasts_under_mask():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.float32)
    out = to_tokens(torch.tensor([2.0, -1.0], dtype=torch.float64), mask)
    assert out.dtype == torch.float32 and out.tolist() == [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]


def test_metrics_per_key_share_and_collapse():
    # two binary rewards, G=2: GRPO maps (0,1) and (0,2) differences to the same +-0.7071; GDPO does not
    comps = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    _, m = compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg())
    for key in ("format", "correct"):
        assert {f"gdpo/{key}/{s}" for s in ("mean", "std", "min", "max", "missing_frac", "adv_share")} <= set(m)
    assert m["gdpo/format/adv_share"] + m["gdpo/correct/adv_share"] == pytest.approx(1.0)
    assert m["gdpo/format/adv_share"] > m["gdpo/correct/adv_share"]
    assert m["gdpo/impl"] == 1.0
    # per group: 2 distinct values each under both methods; across groups GRPO's values coincide
    assert m["gdpo/collapse/distinct_gdpo"] == 2.0


def test_distinct_per_group_counts_rounded_values():
    vals = torch.tensor([0.1, 0.1 + 1e-9, 0.2, 5.0, 5.0])
    assert distinct_per_group(vals, torch.tensor([0, 0, 0, 1, 1])).tolist() == [2, 1]


def test_metric_values_match_a_per_key_loop():
    gen = torch.Generator().manual_seed(3)
    comps = torch.randint(0, 3, (48, 3), generator=gen).double()
    comps[torch.rand(48, 3, generator=gen) < 0.2] = NAN
    comps[:4, 2] = NAN  # one all-missing group for key 2
    comps[4:8, 1] = 1.0  # one constant group for key 1
    keys = ["a", "b", "c"]
    index = [i // 4 for i in range(48)]
    c = GDPOConfig.from_algorithm({"gdpo_reward_keys": keys})
    _, m = compute_gdpo(comps, index, torch.ones(48), c)
    for k, key in enumerate(keys):
        col = comps[:, k]
        vals = col[~torch.isnan(col)]
        assert m[f"gdpo/{key}/missing_frac"] == pytest.approx(1 - vals.numel() / 48)
        assert m[f"gdpo/{key}/mean"] == pytest.approx(float(vals.mean()))
        assert m[f"gdpo/{key}/std"] == pytest.approx(float(vals.std(unbiased=False)))
        assert (m[f"gdpo/{key}/min"], m[f"gdpo/{key}/max"]) == (float(vals.min()), float(vals.max()))
        groups = [col[g * 4 : g * 4 + 4] for g in range(12)]
        flat = sum(1 for g in groups if g[~torch.isnan(g)].unique().numel() <= 1)
        assert m[f"gdpo/{key}/zero_var_frac"] == pytest.approx(flat / 12)


def test_metrics_skip_stats_of_an_all_missing_key():
    comps = torch.tensor([[1.0, NAN], [0.0, NAN], [1.0, NAN], [0.0, NAN]])
    _, m = compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg())
    assert m["gdpo/correct/missing_frac"] == 1.0 and "gdpo/correct/mean" not in m
    assert m["gdpo/correct/adv_share"] == 0.0 and m["gdpo/format/adv_share"] == pytest.approx(1.0)
