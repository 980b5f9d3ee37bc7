"""Property-based tests of GDPO (hypothesis): what must hold for any batch.

- permuting the rollouts (with their group labels) permutes the advantages; renaming the groups changes nothing;
- scaling one reward by a positive constant, or adding a constant to it, changes nothing (eps_group = 0);
- with one reward, GDPO is GRPO followed by the batch step;
- a singleton group, or a group whose rewards are all flat, contributes 0 and leaves every other rollout unchanged.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gdpo_verl.config import GDPOConfig
from gdpo_verl.estimator import compute_gdpo

NAN = float("nan")
SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def batches(draw, max_k: int = 3, missing: bool = True):
    """(rewards (B, K) float64 with NaN = missing, group labels, lengths)."""
    k = draw(st.integers(1, max_k))
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))
    values = st.sampled_from([0.0, 1.0, 2.0, 3.0] + ([NAN] if missing else []))
    rows = [[draw(values) for _ in range(k)] for _ in range(sum(sizes))]
    labels = [f"g{g}" for g, n in enumerate(sizes) for _ in range(n)]
    lengths = [draw(st.integers(1, 30)) for _ in rows]
    return torch.tensor(rows, dtype=torch.float64), labels, torch.tensor(lengths)


def config(k: int, batch_norm: str = "sample", eps_group: float = 1e-6, weights=None):
    keys = [f"r{i}" for i in range(k)]
    return GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": keys,
            "gdpo_reward_weights": list(weights or [1.0 + 0.5 * i for i in range(k)]),
            "gdpo": {"batch_norm": batch_norm, "eps_group": eps_group},
        }
    )


def advantages(rewards, labels, lengths, cfg):
    return compute_gdpo(rewards, labels, lengths, cfg)[0]


@SETTINGS
@given(batches(), st.randoms(use_true_random=False), st.sampled_from(["sample", "token", "none"]))
def test_permuting_rows_and_renaming_groups(batch, rnd, mode):
    rewards, labels, lengths = batch
    cfg = config(rewards.shape[1], mode)
    base = advantages(rewards, labels, lengths, cfg)
    order = list(range(len(labels)))
    rnd.shuffle(order)
    perm = torch.tensor(order)
    shuffled = advantages(rewards[perm], [labels[i] for i in order], lengths[perm], cfg)
    torch.testing.assert_close(shuffled, base[perm], rtol=0, atol=1e-9)
    names = sorted(set(labels))
    renamed = dict(zip(names, rnd.sample(names, len(names)), strict=True))
    torch.testing.assert_close(advantages(rewards, [renamed[g] for g in labels], lengths, cfg), base, rtol=0, atol=0)


@SETTINGS
@given(
    batches(),
    st.integers(0, 2),
    st.floats(0.05, 20.0),
    st.floats(-50.0, 50.0),
    st.sampled_from(["sample", "token", "none"]),
)
def test_scaling_or_shifting_one_reward_changes_nothing(batch, column, scale, shift, mode):
    rewards, labels, lengths = batch
    column = column % rewards.shape[1]
    cfg = config(rewards.shape[1], mode, eps_group=0.0)
    base = advantages(rewards, labels, lengths, cfg)
    scaled = rewards.clone()
    scaled[:, column] = scaled[:, column] * scale + shift
    torch.testing.assert_close(advantages(scaled, labels, lengths, cfg), base, rtol=1e-9, atol=1e-9)


def grpo_then_batch_step(scores: list[float], labels: list[str], eps: float = 1e-6) -> list[float]:
    """GRPO's group z-score (unbiased std; a flat or singleton group gives 0), then the sample-level batch step."""
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(labels):
        groups.setdefault(g, []).append(i)
    adv = [0.0] * len(scores)
    for rows in groups.values():
        vals = [scores[i] for i in rows]
        if len(vals) < 2 or max(vals) == min(vals):
            continue
        m = sum(vals) / len(vals)
        s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
        for i in rows:
            adv[i] = (scores[i] - m) / (s + eps)
    m = sum(adv) / len(adv)
    s = math.sqrt(sum((a - m) ** 2 for a in adv) / (len(adv) - 1)) if len(adv) > 1 else 0.0
    return [(a - m) / (s + eps) for a in adv]


@SETTINGS
@given(batches(max_k=1, missing=False))
def test_one_reward_is_grpo_then_the_batch_step(batch):
    rewards, labels, lengths = batch
    out = advantages(rewards, labels, lengths, config(1, weights=[1.0]))
    want = grpo_then_batch_step(rewards[:, 0].tolist(), labels)
    torch.testing.assert_close(out, torch.tensor(want, dtype=torch.float64), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(batches(missing=False), st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=3, max_size=3), st.integers(1, 5))
def test_a_singleton_or_flat_group_contributes_zero(batch, flat_row, size):
    rewards, labels, lengths = batch
    k = rewards.shape[1]
    cfg = config(k, "none")
    base = advantages(rewards, labels, lengths, cfg)
    extra = torch.tensor([flat_row[:k]] * size, dtype=torch.float64)  # one group, every reward flat (or a singleton)
    more_lengths = torch.cat([lengths, torch.ones(size, dtype=torch.long)])
    out = advantages(torch.cat([rewards, extra]), labels + ["new"] * size, more_lengths, cfg)
    assert out[-size:].tolist() == [0.0] * size
    torch.testing.assert_close(out[:-size], base, rtol=0, atol=0)
