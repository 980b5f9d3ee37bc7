"""GDPO math: the paper's fixtures, a float64 reference, edge cases. Torch only."""

from __future__ import annotations

import math
import random

import pytest
import torch
from reference import reference_gdpo

from gdpo_verl.core import apply_conditions, batch_normalize, gdpo_advantages, group_normalize

NAN = float("nan")
R2 = math.sqrt(2.0)


def adv(rows, index, **kw):
    return gdpo_advantages(torch.tensor(rows, dtype=torch.float64), index, **kw)


def test_paper_two_binary_rewards_g2_before_batch_step():
    # one-reward difference -> +-0.7071; both-rewards difference -> +-1.4142 (GRPO would give +-0.7071 for both)
    res = adv([[0, 0], [1, 0], [0, 0], [1, 1], [1, 1], [1, 1]], [0, 0, 1, 1, 2, 2], batch_norm="none")
    expected = [-1 / R2, 1 / R2, -R2, R2, 0.0, 0.0]
    assert res.advantages.tolist() == pytest.approx(expected, abs=1e-5)


def test_paper_g3_complementary_rewards_are_not_collapsed_per_reward():
    # totals (1,1,1): GRPO gives (0,0,0). GDPO's per-reward advantages are non-zero; with equal weights the two
    # complementary rewards cancel exactly in the sum, with unequal weights they do not.
    res = adv([[1, 0], [1, 0], [0, 1]], [7, 7, 7], batch_norm="none")
    assert res.per_reward.abs().min() > 0.5
    assert res.advantages.abs().max() < 1e-12
    weighted = adv([[1, 0], [1, 0], [0, 1]], [7, 7, 7], weights=[1.0, 0.5], batch_norm="none")
    assert weighted.advantages.abs().min() > 0.2


def test_matches_float64_reference_on_random_batches():
    rng = random.Random(0)
    for trial in range(20):
        groups, g, k = rng.randint(1, 12), rng.randint(1, 6), rng.randint(1, 4)
        rows, index = [], []
        for gi in range(groups):
            for _ in range(g):
                row = [rng.choice([0.0, 1.0, 0.5, rng.uniform(-3, 3), None]) for _ in range(k)]
                rows.append(row)
                index.append(f"uid-{gi}")
        weights = [rng.uniform(-1, 2) for _ in range(k)]
        scale = [rng.random() > 0.3 for _ in range(k)]
        mode = rng.choice(["sample", "none"])
        expected = reference_gdpo(rows, index, weights, scale=scale, batch_norm=mode)
        tensor = torch.tensor([[NAN if v is None else v for v in r] for r in rows], dtype=torch.float64)
        got = gdpo_advantages(tensor, index, weights, scale_by_std=scale, batch_norm=mode).advantages
        assert got.tolist() == pytest.approx(expected, abs=1e-9), f"trial {trial}"


def test_zero_variance_and_singleton_groups_contribute_exactly_zero():
    res = adv([[0.3, 1], [0.3, 0], [5.0, 2]], ["a", "a", "b"], batch_norm="none")
    assert res.per_reward[:, 0].tolist() == [0.0, 0.0, 0.0]  # flat in group a, singleton b
    assert res.per_reward[2].tolist() == [0.0, 0.0]
    # float noise around a constant is still "flat"
    noisy = group_normalize(torch.tensor([[0.1 + 0.2], [0.3]], dtype=torch.float64), torch.tensor([0, 0]), 1)
    assert noisy.tolist() == [[0.0], [0.0]]


def test_missing_values_never_produce_nan():
    res = adv([[NAN, 1], [1, NAN], [0, 0], [NAN, NAN]], [0, 0, 0, 0])
    assert torch.isfinite(res.advantages).all()
    assert res.advantages[3] == 0.0 and not bool(res.counted[3])
    assert res.per_reward[0, 0] == 0.0 and res.per_reward[1, 1] == 0.0
    all_missing = adv([[NAN], [NAN]], [0, 0])
    assert all_missing.advantages.tolist() == [0.0, 0.0]


def test_sample_batch_step_is_unit_variance_over_samples():
    rows = torch.rand(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = gdpo_advantages(rows, [i // 8 for i in range(64)])
    assert float(res.advantages.mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(res.advantages.std()) == pytest.approx(1.0, abs=1e-5)


def test_sample_mode_ignores_length_token_mode_weights_it():
    rows = torch.tensor([[0.0], [1.0], [0.0], [1.0]], dtype=torch.float64)
    idx = [0, 0, 1, 1]
    lengths = torch.tensor([1.0, 1.0, 100.0, 1.0])
    sample = gdpo_advantages(rows, idx, lengths=lengths).advantages
    token = gdpo_advantages(rows, idx, lengths=lengths, batch_norm="token").advantages
    assert sample.tolist() == pytest.approx(gdpo_advantages(rows, idx).advantages.tolist())
    assert token.tolist() != pytest.approx(sample.tolist())


def test_std_division_can_be_turned_off_per_reward():
    res = adv([[0, 0], [2, 4]], [0, 0], scale_by_std=[False, True], batch_norm="none")
    assert res.per_reward[:, 0].tolist() == pytest.approx([-1.0, 1.0])
    assert res.per_reward[:, 1].tolist() == pytest.approx([-1 / R2, 1 / R2], abs=1e-5)


def test_condition_eq8_gates_on_another_reward():
    rows = torch.tensor([[1.0, 1.0], [0.0, 1.0], [NAN, 1.0], [1.0, NAN]])
    out = apply_conditions(rows, [(1, 0, 1.0)])
    assert out[:, 1].tolist()[:2] == [1.0, 0.0]
    assert math.isnan(out[2, 1]) and math.isnan(out[3, 1])


def test_batch_normalize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="batch_norm"):
        batch_normalize(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.bool), "tokens")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"weights": [1.0]}, "1 weights for 2 rewards"), ({"index": [0]}, "index has 1 entries")],
)
def test_shape_errors(kwargs, match):
    args = {"index": [0, 0], **kwargs}
    with pytest.raises(ValueError, match=match):
        gdpo_advantages(torch.zeros(2, 2), args.pop("index"), **args)
