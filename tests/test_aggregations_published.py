"""Built-in aggregations against their authors' published code, ported here line by line (independently of
gdpo_verl) and run on fixed random batches, verl-style (token rewards, response mask, masked whitening):

- SAW (arXiv 2606.07705): github.com/Zhaolutuan/SAW @ 119951f63fa92f93d4d5878c2cc0791db98a7f06,
  verl/trainer/ppo/ray_trainer.py (compute_advantage, ``adv_estimator == 'gdpo-h'``), with that repository's
  verl/trainer/ppo/core_algos.py (compute_grpo_outcome_advantage) and verl/utils/torch_functional.py
  (masked_whiten).
- GD²PO (arXiv 2606.16771): github.com/Qwen-Applications/GD2PO @ f1ad765bc9a330e6cf387f95e9c1e5a6c4bb2d02,
  tool-calling/verl/trainer/ppo/ray_trainer.py (_get_mixed_sign_conflict_mask, _compute_gdpo_group_keep_ratio,
  _apply_gdpo_keep_mask, the ``GDPO_Filter_GroupRatio`` branch and _compute_gdpo_ratio_conflict_advantages).
- SA-MRPO (arXiv 2608.16072): NVIDIA's reference implementation, "SA-GDPO" in github.com/NVlabs/GDPO @
  41f74c53a640a743d0b37d23cbc14d4e9c431669, trl-GDPO/trl-0.18.0-gdpo/trl/trainer/grpo_trainer.py
  (_generate_and_score_completions, the ``apply_sa_gdpo`` branch) and trl/trainer/grpo_config.py
  (``sa_gdpo_gamma`` default 1.0, ``reward_mins`` / ``reward_maxs``).

Our side runs with ``batch_norm=token`` and ``eps_batch=1e-4`` (so rsqrt(var + eps^2) is their rsqrt(var + 1e-8))
for the two verl ports, and with the sample batch step and ``eps_group = eps_batch = 1e-4`` for the trl port.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import pytest
import torch

from gdpo_verl import estimator
from gdpo_verl.config import GDPOConfig, GDPOConfigError
from gdpo_verl.estimator import compute_gdpo, to_tokens

T = 24  # response length of the padded token tensors


# --- the published code, ported ------------------------------------------------------------------------------------
def grpo_outcome_advantage(token_level_rewards, response_mask, index, epsilon=1e-6):
    """verl's compute_grpo_outcome_advantage as both repositories ship it (a singleton group keeps its score)."""
    scores = token_level_rewards.sum(dim=-1)
    id2score = defaultdict(list)
    id2mean, id2std = {}, {}
    for i in range(scores.shape[0]):
        id2score[index[i]].append(scores[i])
    for idx, vals in id2score.items():
        if len(vals) == 1:
            id2mean[idx], id2std[idx] = torch.tensor(0.0), torch.tensor(1.0)
        else:
            id2mean[idx], id2std[idx] = torch.mean(torch.tensor(vals)), torch.std(torch.tensor([vals]))
    for i in range(scores.shape[0]):
        scores[i] = (scores[i] - id2mean[index[i]]) / (id2std[index[i]] + epsilon)
    return scores.unsqueeze(-1) * response_mask


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def masked_whiten(values, mask):
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    var = var * (mask.sum() / (mask.sum() - 1))  # unbiased
    return (values - mean) * torch.rsqrt(var + 1e-8)


def saw_gdpo_h(corr_tokens, fmt_tokens, response_mask, index):
    """SAW ``gdpo-h``: CV weights of the offset correctness (+3.0, its [-3, 3] range) and of the format score."""
    seq_corr = (corr_tokens * response_mask).sum(dim=-1)
    seq_fmt = (fmt_tokens * response_mask).sum(dim=-1)
    offset_corr = seq_corr + 3.0
    mu_c, std_c = offset_corr.mean(), offset_corr.std()
    mu_f, std_f = seq_fmt.mean(), seq_fmt.std()
    epsilon = 1e-8
    cv_corr = std_c / (torch.abs(mu_c) + epsilon)
    cv_fmt = std_f / (torch.abs(mu_f) + epsilon)
    total_cv = cv_corr + cv_fmt + epsilon
    w_corr, w_fmt = (cv_corr / total_cv) * 2.0, (cv_fmt / total_cv) * 2.0
    corr_adv = grpo_outcome_advantage(corr_tokens.clone(), response_mask, index)
    fmt_adv = grpo_outcome_advantage(fmt_tokens.clone(), response_mask, index)
    combined = w_corr * corr_adv + w_fmt * fmt_adv
    return masked_whiten(combined, response_mask) * response_mask, (float(w_corr), float(w_fmt))


def gd2po(reward_tokens, response_mask, index, ratio_threshold=None):
    """GD²PO with the group keep ratio: ``GDPO_Filter_GroupRatio`` (ratio_threshold None) or
    ``GDPO_Filter_RatioConflict_GroupRatio``."""
    token_adv = torch.stack([grpo_outcome_advantage(t.clone(), response_mask, index) for t in reward_tokens])
    rollout_adv = (token_adv * response_mask).sum(dim=-1)
    conflict = (rollout_adv > 1e-8).any(dim=0) & (rollout_adv < -1e-8).any(dim=0)
    if ratio_threshold is not None:
        ratio = rollout_adv.sum(dim=0) / (rollout_adv.abs().sum(dim=0) + 1e-8)
        conflict = conflict & (ratio.abs() < max(min(ratio_threshold, 1.0), 0.0))
    keep = ~conflict
    new_adv = token_adv.sum(dim=0)
    group_ratio = torch.zeros(keep.shape[0], dtype=new_adv.dtype)
    for g in set(index):
        rows = torch.tensor([i == g for i in index])
        group_ratio[rows] = keep.to(new_adv.dtype)[rows].sum() / float(rows.sum())
    new_adv = new_adv * group_ratio.unsqueeze(-1)
    keep_f = keep.to(new_adv.dtype)
    filtered = new_adv * keep_f.unsqueeze(-1) * response_mask
    whiten_mask = keep_f.unsqueeze(-1) * response_mask
    return masked_whiten(filtered, whiten_mask) * whiten_mask, keep


def sa_gdpo(rewards, num_generations, reward_weights, reward_mins, reward_maxs, gamma):
    """NVIDIA's SA-GDPO: per-reward group z-scores (std + 1e-4), weights times (1 - batch saturation)^gamma, then
    the batch-wise normalization (std + 1e-4). Rollouts are ordered group by group, ``num_generations`` each."""
    filtered = torch.nan_to_num(rewards)
    per_reward = []
    for i in range(len(reward_weights)):
        reward_i = filtered[:, i]
        mean = reward_i.view(-1, num_generations).mean(dim=1).repeat_interleave(num_generations, dim=0)
        std = reward_i.view(-1, num_generations).std(dim=1).repeat_interleave(num_generations, dim=0)
        per_reward.append((reward_i - mean) / (std + 1e-4))
    combined = torch.stack(per_reward, dim=1)
    reward_ranges = (reward_maxs - reward_mins).clamp_min(1e-4)
    saturation = ((filtered.mean(dim=0) - reward_mins) / reward_ranges).clamp(0.0, 1.0)
    dynamic = reward_weights * ((1.0 - saturation) ** gamma)
    pre_bn = (combined * dynamic.unsqueeze(0)).nansum(dim=1)
    return (pre_bn - pre_bn.mean()) / (pre_bn.std() + 1e-4), dynamic


# --- fixed random batches --------------------------------------------------------------------------------------------
def make_batch(seed: int, n_groups: int = 16, g: int = 8):
    gen = torch.Generator().manual_seed(seed)
    b = n_groups * g
    corr = torch.randint(-3, 4, (b,), generator=gen).double()  # correctness in [-3, 3]
    fmt = torch.randint(0, 3, (b,), generator=gen).double() / 2  # format in {0, 0.5, 1}
    extra = torch.rand(b, generator=gen, dtype=torch.float64)
    corr[:g] = 2.0  # one flat group
    lengths = torch.randint(1, T + 1, (b,), generator=gen)
    mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).double()
    index = [f"uid{i // g}" for i in range(b)]
    return torch.stack([corr, fmt, extra], dim=1), lengths, mask, index


def at_last_token(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A sequence reward as verl places it: on the response's last token."""
    out = torch.zeros(values.shape[0], T, dtype=torch.float64)
    out[torch.arange(values.shape[0]), lengths - 1] = values
    return out


def ours(keys, comps, lengths, mask, index, aggregation, args):
    cfg = GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": keys,
            "gdpo": {"aggregation": aggregation, "aggregation_args": args, "batch_norm": "token", "eps_batch": 1e-4},
        }
    )
    scalars, metrics = compute_gdpo(comps, index, lengths, cfg)
    return to_tokens(scalars, mask.to(torch.float64)), scalars, metrics


@pytest.mark.parametrize("seed", range(4))
def test_cv_reproduces_saw(seed):
    comps, lengths, mask, index = make_batch(seed)
    want, (w_corr, w_fmt) = saw_gdpo_h(
        at_last_token(comps[:, 0], lengths), at_last_token(comps[:, 1], lengths), mask, index
    )
    got, _, m = ours(
        ["correctness", "format"], comps[:, :2], lengths, mask, index, "cv", {"ranges": {"correctness": [-3, 3]}}
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert m["gdpo/correctness/weight"] == pytest.approx(w_corr, abs=1e-9)
    assert m["gdpo/format/weight"] == pytest.approx(w_fmt, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [1.0, 0.5, 2.0])
def test_saturation_reproduces_nvidia_sa_gdpo(seed, gamma):
    comps, lengths, _, index = make_batch(seed)
    weights = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    mins = torch.tensor([-3.0, 0.0, 0.0], dtype=torch.float64)
    maxs = torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64)
    want, dynamic = sa_gdpo(comps, 8, weights, mins, maxs, gamma)
    cfg = GDPOConfig.from_algorithm(
        {
            "gdpo_reward_keys": ["correctness", "format", "extra"],
            "gdpo_reward_weights": weights.tolist(),
            "gdpo": {
                "aggregation": "saturation",
                "aggregation_args": {"gamma": gamma, "ranges": {"correctness": [-3, 3]}},
                "eps_group": 1e-4,
                "eps_batch": 1e-4,
            },
        }
    )
    got, m = compute_gdpo(comps, index, lengths, cfg)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    for key, w in zip(["correctness", "format", "extra"], dynamic.tolist(), strict=True):
        assert m[f"gdpo/{key}/weight"] == pytest.approx(w, abs=1e-9)


def test_saturation_default_gamma_is_the_reference_codes():
    comps, lengths, _, index = make_batch(0)
    base = {"gdpo_reward_keys": ["correctness", "format"], "gdpo": {"aggregation": "saturation"}}
    args = {"ranges": {"correctness": [-3, 3]}}
    default = compute_gdpo(
        comps[:, :2],
        index,
        lengths,
        GDPOConfig.from_algorithm({**base, "gdpo": {**base["gdpo"], "aggregation_args": args}}),
    )[0]
    explicit = compute_gdpo(
        comps[:, :2],
        index,
        lengths,
        GDPOConfig.from_algorithm({**base, "gdpo": {**base["gdpo"], "aggregation_args": {**args, "gamma": 1.0}}}),
    )[0]
    other = compute_gdpo(
        comps[:, :2],
        index,
        lengths,
        GDPOConfig.from_algorithm({**base, "gdpo": {**base["gdpo"], "aggregation_args": {**args, "gamma": 2.0}}}),
    )[0]
    assert torch.equal(default, explicit) and not torch.allclose(default, other)


def test_cv_of_a_signed_reward_is_taken_after_its_range_shift():
    # correctness in [-3, 3] centred near 0: its raw CV would be huge and take the whole weight (multipliers 2, 0)
    comps = torch.tensor([[3.0, 1.0], [-3.0, 0.0], [3.0, 0.0], [-3.0, 1.0]], dtype=torch.float64)
    mask = torch.ones(4, T, dtype=torch.float64)
    lengths = torch.full((4,), T)
    _, (w_corr, w_fmt) = saw_gdpo_h(
        at_last_token(comps[:, 0], lengths), at_last_token(comps[:, 1], lengths), mask, [0, 0, 1, 1]
    )
    _, _, m = ours(
        ["correctness", "format"], comps, lengths, mask, [0, 0, 1, 1], "cv", {"ranges": {"correctness": [-3, 3]}}
    )
    assert (m["gdpo/correctness/weight"], m["gdpo/format/weight"]) == pytest.approx((w_corr, w_fmt), abs=1e-9)
    assert 0.5 < m["gdpo/correctness/weight"] < 1.5 and 0.5 < m["gdpo/format/weight"] < 1.5


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio_threshold", [None, 0.2, 0.6])
def test_conflict_reproduces_gd2po(seed, ratio_threshold):
    comps, lengths, mask, index = make_batch(seed)
    comps[:, 0] = comps[:, 0].clamp(min=0) / 3  # rewards in [0, 1], as their tool-calling suite
    want, keep = gd2po([at_last_token(comps[:, k], lengths) for k in range(3)], mask, index, ratio_threshold)
    args = {} if ratio_threshold is None else {"mode": "ratio", "ratio_threshold": ratio_threshold}
    got, scalars, _ = ours(["a", "b", "c"], comps, lengths, mask, index, "conflict", args)
    assert bool((~keep).any()) and bool(keep.any())  # the batch exercises both
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert bool((scalars[~keep] == 0).all())  # dropped rollouts: exactly 0


def test_conflict_ratio_mode_defaults_to_the_published_threshold():
    comps, lengths, mask, index = make_batch(1)
    _, default, _ = ours(["a", "b", "c"], comps, lengths, mask, index, "conflict", {"mode": "ratio"})
    _, explicit, _ = ours(
        ["a", "b", "c"], comps, lengths, mask, index, "conflict", {"mode": "ratio", "ratio_threshold": 0.2}
    )
    _, hard, _ = ours(["a", "b", "c"], comps, lengths, mask, index, "conflict", {})
    assert torch.equal(default, explicit) and not torch.equal(default, hard)


def test_dropped_rollouts_leave_the_sample_batch_step():
    # group 0 rollouts 0 and 1 conflict (format up, correct down and back); group 1 agrees
    comps = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    index = [0, 0, 1, 1, 2, 2]
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": ["f", "c"], "gdpo": {"aggregation": "conflict"}})
    out, m = compute_gdpo(comps, index, torch.ones(6), cfg)
    assert out[:2].tolist() == [0.0, 0.0]
    a = 0.5 / (0.5**0.5 + 1e-6)  # A_k of a {1, 0} group
    kept = torch.tensor([2 * a, -2 * a, 2 * a, -2 * a], dtype=torch.float64)  # every kept group's share is 1
    want = (kept - kept.mean()) / (kept.std() + 1e-6)
    torch.testing.assert_close(out[2:], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("aggregation", "args", "message"),
    [
        ("cv", {"ranges": {"x": [0, 1]}}, r"ranges names \['x'\]"),
        ("cv", {"ranges": {"a": [1, 0]}}, r"ranges\.a must be finite with lo < hi"),
        ("conflict", {"mode": "soft"}, r"mode must be one of \['hard', 'ratio'\]"),
        ("conflict", {"ratio_threshold": 1.5}, r"ratio_threshold must be >= 0 and <= 1"),
        ("conflict", {"scale": 0.5}, r"no option\(s\) \['scale'\]; its options: \['mode', 'prompt_power'"),
    ],
)
def test_option_errors(aggregation, args, message):
    with pytest.raises(GDPOConfigError, match=message):
        GDPOConfig.from_algorithm(
            {"gdpo_reward_keys": ["a", "b"], "gdpo": {"aggregation": aggregation, "aggregation_args": args}}
        )


@pytest.mark.parametrize("aggregation", ["cv", "saturation"])
def test_cv_and_saturation_share_the_range_error(aggregation):
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": ["corr", "fmt"], "gdpo": {"aggregation": aggregation}})
    comps = torch.tensor([[3.0, 0.0], [-3.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    with pytest.raises(
        ValueError,
        match=rf"aggregation {aggregation}: reward 'corr' has values outside its range \[0, 1\]; "
        r"declare it: aggregation_args\.ranges\.corr",
    ):
        compute_gdpo(comps, [0, 0, 1, 1], torch.ones(4), cfg)


def test_group_variance_says_it_is_an_unverified_reading(caplog):
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a", "b"], "gdpo": {"aggregation": "group_variance"}})
    estimator._warned.discard("unverified:group_variance")
    estimator._runs.clear()
    with caplog.at_level(logging.WARNING, logger="gdpo_verl"):
        compute_gdpo(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 0], torch.ones(2), cfg)
        compute_gdpo(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 0], torch.ones(2), cfg)
    assert [r.getMessage() for r in caplog.records if "unverified reading" in r.getMessage()] == [
        "GDPO aggregation 'group_variance' is an unverified reading: DVAO (arXiv 2605.25604): no public code and the "
        "paper's equations were not at hand (docs/aggregations.md)"
    ]


def test_only_group_variance_is_announced_as_unverified(caplog):
    estimator._runs.clear()
    estimator._warned.clear()
    with caplog.at_level(logging.WARNING, logger="gdpo_verl"):
        for aggregation in ("saturation", "cv", "conflict", "gdpo"):
            cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": ["a", "b"], "gdpo": {"aggregation": aggregation}})
            compute_gdpo(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 0], torch.ones(2), cfg)
    assert not [r for r in caplog.records if "unverified" in r.getMessage()]
