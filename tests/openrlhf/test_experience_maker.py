"""GDPO through OpenRLHF's real classes: responses -> ``SamplesGenerator._process_response_into_experience`` ->
``GDPOExperienceMaker.make_experience_batch`` (OpenRLHF's split into micro-batches, its model-forward dispatch to
fake actor/reference groups over Ray, its KL) -> token advantages, checked token by token against the verl path
(``gdpo_verl_plugins.adv_estimator``) and the independent float64 reference (tests/reference.py), plus OpenRLHF's
per-token shaping written out from openrlhf 0.11.2 (models/utils.py ``compute_reward``: scalar on the last action
token plus ``-kl_coef * kl`` per token; experience_maker.py ``get_cumulative_returns``: masked reverse cumulative sum).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import NEEDED_STUBS, STUBS
from reference import reference_gdpo

pytest.importorskip("openrlhf")

N = 4  # rollouts per prompt
KEYS = ("correct", "format")
# (correct, format) per rollout, prompt-major; None = missing. Prompt 0: format is flat in its group; prompt 1: one
# correct value missing; prompt 2: fractional values.
ROWS = [
    (1, 1), (0, 1), (1, 1), (0, 1),
    (0, 0), (1, 1), (None, 0), (1, 0),
    (0.5, 1), (0, 0), (1, 1), (0, 1),
]  # fmt: skip
KL_COEF = 0.05
MULTI_TURN = 5  # this rollout has two action spans with environment tokens between them


def _actor_logprobs(seq: torch.Tensor) -> torch.Tensor:
    return -0.1 - 0.01 * (seq[:, 1:] % 7).float()


def _ref_logprobs(seq: torch.Tensor) -> torch.Tensor:
    return -0.1 - 0.02 * (seq[:, 1:] % 5).float()


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray with the launcher's worker setup hook; the stand-ins on the workers' path where needed."""
    import ray
    from gdpo_verl_plugins.openrlhf.train_ppo_ray import with_setup_hook

    env = {"env_vars": {"PYTHONPATH": str(STUBS)}} if NEEDED_STUBS else {}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=with_setup_hook(env), log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


class FakeGroup:
    """The RayActorGroup surface RemoteExperienceMaker.make_experience uses: one 'rank' answering every micro-batch."""

    def __init__(self, fn):
        self.fn = fn

    def async_run_method_batch(self, method_name, **kwargs):
        import ray

        assert method_name == "forward"
        return [ray.put([self.fn(seq) for seq in kwargs["sequences"]])]

    def async_run_method(self, method_name, **kwargs):
        import ray

        return [ray.put(None)]


def _argv(estimator: str, *extra: str, kl: bool = True, dynamic: bool = False) -> list[str]:
    argv = [
        "--actor.model_name_or_path", "unused", "--reward.remote_url", "reward_func.py",
        "--actor.num_gpus_per_node", "1", "--ref.num_gpus_per_node", "1",
        "--rollout.n_samples_per_prompt", str(N), "--rollout.batch_size", str(len(ROWS) // N),
        "--rollout.micro_batch_size", "5",  # 12 rollouts -> 5, 5, 2: prompt groups split across micro-batches
        "--algo.kl.init_coef", str(KL_COEF if kl else 0.0),
        "--algo.advantage.estimator", estimator,
    ]  # fmt: skip
    if dynamic:  # OpenRLHF's length-balanced split, which reorders rollouts across micro-batches
        argv += ["--train.dynamic_batch_enable", "--rollout.max_tokens_per_gpu", "40", "--vllm.num_engines", "1"]
    return argv + list(extra)


def _responses(rows, keys=KEYS, reward_fn=None):
    """What OpenRLHF's SingleTurnAgentExecutor returns per rollout (openrlhf/utils/agent.py: output.update(reward=
    rewards_info["rewards"], scores=..., extra_logs=rewards_info["extra_logs"])), rewards from our helper."""
    from gdpo_verl_plugins.openrlhf.rewards import reward_func

    table = {str(i): dict(zip(keys, row, strict=True)) for i, row in enumerate(rows)}
    reward_fn = reward_fn or reward_func(lambda query, prompt, label: table[label], keys)
    out = []
    for i in range(len(rows)):
        prompt_len, response_len = 4 + i % 3, 3 + (5 * i) % 7
        tokens = [(7 * i + 3 * t) % 50 + 1 for t in range(prompt_len + response_len + 3)]
        if i == MULTI_TURN:  # action, 3 environment tokens, action
            ranges = [(prompt_len, prompt_len + 2), (prompt_len + 5, prompt_len + response_len + 3)]
        else:
            ranges = [(prompt_len, prompt_len + response_len)]
            tokens = tokens[: prompt_len + response_len]
        info = reward_fn([f"q{i}"], [f"prompt {i // N}"], [str(i)])
        out.append(
            {
                "prompt": f"prompt {i // N}",
                "label": str(i),
                "observation_tokens": tokens,
                "action_ranges": ranges,
                "rollout_log_probs": None,
                "truncated": False,
                "reward": info["rewards"],
                "scores": info["scores"],
                "extra_logs": info["extra_logs"],
            }
        )
    return out


def _run(argv, rows, maker_cls=None, reward_fn=None, keys=KEYS):
    from gdpo_verl_plugins.openrlhf.experience_maker import GDPOExperienceMaker
    from gdpo_verl_plugins.openrlhf.train_ppo_ray import parse_args
    from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    args = parse_args(argv)
    strategy = SimpleNamespace(args=args)
    tokenizer = SimpleNamespace(pad_token_id=0)
    generator = SamplesGenerator(strategy, None, None, tokenizer, [])
    samples = [generator._process_response_into_experience(r, max_len=64) for r in _responses(rows, keys, reward_fn)]
    ref = FakeGroup(_ref_logprobs) if args.algo.kl.init_coef > 0 else None
    maker = (maker_cls or GDPOExperienceMaker)(
        FakeGroup(_actor_logprobs), None, None, ref, FixedKLController(args.algo.kl.init_coef), strategy, tokenizer
    )
    return maker.make_experience_batch(samples), args


def _verl_path(rows, mask_by_position, batch_norm="sample"):
    """The verl adapter on the same rewards: token advantages (B, T) and its gdpo/* metrics."""
    from gdpo_verl_plugins import metrics_bridge
    from gdpo_verl_plugins.adv_estimator import compute_gdpo_outcome_advantage

    mask = torch.nn.utils.rnn.pad_sequence(mask_by_position, batch_first=True).float()
    columns = {k: np.array([row[j] for row in rows], dtype=object) for j, k in enumerate(KEYS)}
    with metrics_bridge.collect() as figures:
        adv, _ = compute_gdpo_outcome_advantage(
            torch.zeros_like(mask),
            mask,
            index=np.array([f"uid{i // N}" for i in range(len(rows))], dtype=object),
            config={"gdpo_reward_keys": list(KEYS), "gdpo": {"batch_norm": batch_norm}},
            non_tensor_batch=columns,
        )
    return adv, figures


def _by_position(experiences, field):
    out = {}
    for e in experiences:
        for j, pos in enumerate(e.index):
            out[pos] = getattr(e, field)[j] if field != "info" else {k: v[j] for k, v in e.info.items()}
    return [out[i] for i in range(len(out))]


def _openrlhf_shaping(scalar: float, seq: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token advantage OpenRLHF gives a rollout with outcome ``scalar`` (see the module docstring)."""
    kl = _actor_logprobs(seq.unsqueeze(0))[0] - _ref_logprobs(seq.unsqueeze(0))[0]  # k1 estimator
    reward = -kl_coef * kl[: mask.numel()] * mask.float()
    reward[int(mask.nonzero().max())] += scalar
    return reward.flip(0).cumsum(0).flip(0)


@pytest.mark.parametrize("kl", [False, True], ids=["kl_off", "kl_on"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["micro_batches", "dynamic_batches"])
def test_token_advantages_equal_verl_path(ray_session, kl, dynamic):
    experiences, args = _run(_argv("gdpo", "--gdpo.reward_keys", ",".join(KEYS), kl=kl, dynamic=dynamic), ROWS)
    positions = [list(e.index) for e in experiences]
    assert len(experiences) >= 2 and any(len({p // N for p in ps}) > 1 for ps in positions)  # groups are split
    masks = [m.bool() for m in _by_position(experiences, "action_mask")]
    seqs, advs = _by_position(experiences, "sequences"), _by_position(experiences, "advantages")
    verl_adv, verl_metrics = _verl_path(ROWS, masks)
    expected = reference_gdpo(ROWS, [i // N for i in range(len(ROWS))], [1.0, 1.0])
    kl_coef = KL_COEF if kl else 0.0
    for pos, (mask, seq, adv) in enumerate(zip(masks, seqs, advs, strict=True)):
        verl_row = verl_adv[pos, : mask.numel()]
        assert float(verl_row[mask][0]) == pytest.approx(expected[pos], abs=1e-6)
        shaped = _openrlhf_shaping(float(verl_row[mask][0]), seq, mask, kl_coef)
        torch.testing.assert_close(adv[: mask.numel()][mask], shaped[mask], atol=1e-5, rtol=0)
        if not kl:  # every action token carries exactly the verl path's advantage
            torch.testing.assert_close(adv[: mask.numel()][mask], verl_row[mask].float(), atol=1e-6, rtol=0)
    assert masks[MULTI_TURN].sum() < masks[MULTI_TURN].numel() - 1  # the multi-turn rollout has a masked gap
    assert float(verl_adv[6].abs().sum()) != 0.0  # the rollout with a missing component still has an advantage
    # per-reward metrics as on verl, one value per sample in OpenRLHF's info (its actor logs the mean)
    info = _by_position(experiences, "info")
    assert verl_metrics["gdpo/correct/missing_frac"] == pytest.approx(1 / 12)
    for name, value in verl_metrics.items():
        assert all(float(row[name]) == pytest.approx(value, rel=1e-6, abs=1e-6) for row in info), name
    assert not any(k in row for row in info for k in KEYS)  # raw columns (NaN) moved to gdpo/<key>/*


def test_one_reward_equals_openrlhf_group_norm(ray_session):
    """GDPO with one reward and no batch step is OpenRLHF's group_norm ((r - mean) / (std + 1e-9), unbiased std) up
    to the epsilon (1e-6 here), KL shaping included."""
    from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

    rows = [(r,) for r in (1, 0, 1, 0, 0, 0, 0, 0, 0.5, 0, 1, 0.25)]  # group 1 is flat
    gdpo, _ = _run(_argv("gdpo", "--gdpo.reward_keys", "correct", "--gdpo.batch_norm", "none"), rows, keys=("correct",))
    own, _ = _run(_argv("group_norm"), rows, maker_cls=RemoteExperienceMaker, keys=("correct",))
    swapped, _ = _run(_argv("group_norm"), rows, keys=("correct",))  # GDPOExperienceMaker, another estimator
    for a, b, c in zip(_by_position(gdpo, "advantages"), _by_position(own, "advantages"),
                       _by_position(swapped, "advantages"), strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        assert torch.equal(b, c)  # every other estimator is the parent's, bit for bit
    assert float(_by_position(gdpo, "advantages")[0].abs().max()) > 0.5


def test_missing_component_stops_naming_keys_present(ray_session):
    from gdpo_verl_plugins.openrlhf.experience_maker import MissingComponentError

    def partial(queries, prompts, labels):  # a reward function that forgets 'format' for one rollout
        logs = {"correct": torch.tensor([1.0])}
        if labels[0] != "3":
            logs["format"] = torch.tensor([0.0])
        return {"rewards": torch.tensor([1.0]), "scores": torch.tensor([1.0]), "extra_logs": logs}

    with pytest.raises(MissingComponentError) as err:
        _run(_argv("gdpo", "--gdpo.reward_keys", ",".join(KEYS)), ROWS, reward_fn=partial)
    message = str(err.value)
    assert "['format']" in message and "sample 3 of 12" in message and "['correct']" in message

    def raising(queries, prompts, labels):
        # OpenRLHF's executor catches this, logs it at INFO and returns reward=None, extra_logs={} (agent.py)
        return {"rewards": None, "scores": None, "extra_logs": {}} if labels[0] == "7" else partial(["q"], ["p"], ["0"])

    with pytest.raises(MissingComponentError, match=r"sample 7 of 12 .* returned in extra_logs: \[\]"):
        _run(_argv("gdpo", "--gdpo.reward_keys", ",".join(KEYS)), ROWS, reward_fn=raising)


def test_async_training_actor_builds_gdpo_maker(ray_session, tmp_path):
    """The async trainer's TrainingActor, built in a Ray worker started with the launcher's setup hook, holds a
    GDPOExperienceMaker with the command line's settings."""
    from gdpo_verl_plugins.openrlhf.train_ppo_ray import parse_args
    from openrlhf.trainer.ppo_trainer_async import TrainingActor
    from openrlhf.utils import get_strategy

    from gdpo_verl.quickstart.assets import build_tokenizer

    build_tokenizer(tmp_path)
    args = parse_args(_argv("gdpo", "--gdpo.reward_keys", "correct,format", "--gdpo.reward_weights", "1,0.5"))
    actor = TrainingActor.remote(
        str(tmp_path), get_strategy(args), None, None, None, None, None,
        vllm_lock=None, rollout_queue=None, rollout_slots=None,
    )  # fmt: skip
    built = ray_session.get(
        actor.__ray_call__.remote(lambda self: (type(self.experience_maker).__name__, self.experience_maker.gdpo)),
        timeout=300,
    )
    assert built[0] == "GDPOExperienceMaker"
    assert built[1].reward_keys == ("correct", "format") and built[1].weights == (1.0, 0.5)
    assert math.isclose(built[1].eps_group, 1e-6)
