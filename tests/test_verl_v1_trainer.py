"""verl's V1 trainer step ``PPOTrainer._compute_advantage`` with our hook, on a TransferQueue stand-in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("verl")
pytest.importorskip("transfer_queue")
pytestmark = pytest.mark.verl

from fake_transfer_queue import FakeTransferQueue  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transfer_queue import KVBatchMeta  # noqa: E402
from verl.trainer.ppo.v1 import trainer_base  # noqa: E402

from gdpo_verl.config import GDPOConfig  # noqa: E402
from gdpo_verl.estimator import compute_gdpo  # noqa: E402

KEYS = ["format", "correct"]


class _Trainer(trainer_base.PPOTrainer):  # only the abstract callbacks filled in; __init__ is skipped
    def on_sample_end(self, *args, **kwargs):
        pass

    def on_step_end(self, *args, **kwargs):
        pass


def trainer(**alg):
    t = object.__new__(_Trainer)
    t.global_steps = 1
    t.config = OmegaConf.create(
        {
            "algorithm": {
                "adv_estimator": "gdpo",
                "gdpo_reward_keys": KEYS,
                "use_kl_in_reward": False,
                "gamma": 1.0,
                "lam": 1.0,
                "norm_adv_by_std_in_grpo": True,
                **alg,
            },
            "actor_rollout_ref": {"rollout": {"n": 4}},
        }
    )
    return t


def store(fake, keys, comps, lengths, top_level=False):
    rows = []
    for key, (f, c), length in zip(keys, comps, lengths, strict=True):
        rm = torch.zeros(length)
        rm[-1] = f + c
        info = {"format": f, "correct": c, "score": f + c}
        row = {
            "uid": key.split("_")[0],
            "prompts": torch.arange(1, 4, dtype=torch.int64),
            "responses": torch.arange(1, length + 1, dtype=torch.int64),
            "response_mask": torch.ones(length, dtype=torch.int64),
            "rm_scores": rm,
            "extra_fields": {} if top_level else {"reward_extra_info": info, "min_global_steps": 0},
        }
        if top_level:
            row.update({"format": torch.tensor(float(f)), "correct": torch.tensor(float(c))})
        rows.append(row)
    fake.put_rows(keys, rows)


def run(t, fake, keys, monkeypatch):
    monkeypatch.setattr(trainer_base, "tq", fake)
    meta = KVBatchMeta(keys=keys, tags=[{} for _ in keys], partition_id="train")
    metrics: dict = {}
    t._compute_advantage(meta, metrics=metrics)
    adv = [fake.rows[("train", k)]["advantages"] for k in keys]
    return adv, metrics


def single_output_batch(seed=0):
    rng = np.random.default_rng(seed)
    keys = [f"u{g}_{s}_0" for g in range(3) for s in range(4)]
    comps = [(float(rng.integers(0, 2)), float(rng.integers(0, 2))) for _ in keys]
    lengths = [int(rng.integers(2, 7)) for _ in keys]
    return keys, comps, lengths


@pytest.mark.parametrize("top_level", [False, True], ids=["reward_extra_info", "colocated_top_level"])
def test_v1_advantages_are_ours_and_metrics_logged(monkeypatch, top_level):
    keys, comps, lengths = single_output_batch()
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths, top_level=top_level)
    adv, metrics = run(trainer(), fake, keys, monkeypatch)
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": KEYS})
    expected, _ = compute_gdpo(torch.tensor(comps), [k.split("_")[0] for k in keys], torch.tensor(lengths), cfg)
    for a, e, length in zip(adv, expected.tolist(), lengths, strict=True):
        assert a.shape == (length,)
        torch.testing.assert_close(a, torch.full((length,), e, dtype=a.dtype), atol=1e-6, rtol=1e-6)
    assert metrics["gdpo/impl"] == 1.0 and "gdpo/format/mean" in metrics and "gdpo/collapse/distinct_gdpo" in metrics


def test_v1_multi_output_sessions_use_the_final_output_once(monkeypatch):
    # session 0 of u0 has three outputs: all share its reward (verl copies the final one's) and its advantage
    keys = ["u0_0_0", "u0_0_1", "u0_0_2", "u0_1_0", "u0_2_0", "u1_0_0", "u1_1_0"]
    comps = [(1.0, 0.0)] * 3 + [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 1.0)]
    lengths = [3, 4, 5, 2, 6, 3, 3]
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    adv, _ = run(trainer(), fake, keys, monkeypatch)
    session_rows = [0, 3, 4, 5, 6]  # one row per session
    cfg = GDPOConfig.from_algorithm({"gdpo_reward_keys": KEYS})
    sub = torch.tensor([comps[i] for i in session_rows])
    expected, _ = compute_gdpo(sub, ["u0", "u0", "u0", "u1", "u1"], torch.tensor([5, 2, 6, 3, 3]), cfg)
    firsts = [float(a[0]) for a in adv]
    assert firsts[0] == firsts[1] == firsts[2]
    assert [firsts[i] for i in session_rows] == pytest.approx(expected.tolist(), abs=1e-6)


def test_v1_missing_key_is_a_clear_error(monkeypatch):
    keys, comps, lengths = single_output_batch(1)
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    with pytest.raises(KeyError, match=r"'length'.*present: \['correct', 'format', 'score'\]"):
        run(trainer(gdpo_reward_keys=["format", "length"]), fake, keys, monkeypatch)


@pytest.mark.parametrize("top_level", [False, True], ids=["reward_extra_info", "colocated_top_level"])
def test_v1_misspelled_key_is_the_legacy_missing_key_error(monkeypatch, top_level):
    """TransferQueue answers an empty TensorDict for a field it does not hold; that must not surface as a raw
    TensorDict KeyError but as the MissingRewardKeyError the legacy trainer gives."""
    from gdpo_verl_plugins.adv_estimator import MissingRewardKeyError

    keys, comps, lengths = single_output_batch(3)
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths, top_level=top_level)
    present = "['correct', 'format', 'score']" if not top_level else "['correct', 'format']"
    with pytest.raises(MissingRewardKeyError) as e:
        run(trainer(gdpo_reward_keys=["format", "corect"]), fake, keys, monkeypatch)
    message = str(e.value)
    assert "'corect'" in message and "TensorDict" not in message
    if not top_level:
        assert f"Reward fields present: {present}" in message, message


def test_v1_other_estimators_keep_their_advantages_and_log_per_reward_figures(monkeypatch):
    keys, comps, lengths = single_output_batch(2)
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    adv, metrics = run(trainer(adv_estimator="grpo"), fake, keys, monkeypatch)
    plain = FakeTransferQueue()
    store(plain, keys, comps, lengths)
    monkeypatch.setattr(trainer_base, "tq", plain)
    meta = KVBatchMeta(keys=keys, tags=[{} for _ in keys], partition_id="train")
    trainer_base.PPOTrainer._compute_advantage.__wrapped__(trainer(adv_estimator="grpo"), meta, metrics={})
    for a, b in zip(adv, (plain.rows[("train", k)]["advantages"] for k in keys), strict=True):
        torch.testing.assert_close(a, b)  # verl's GRPO advantages, untouched
    fmt = np.array([c[0] for c in comps])
    assert metrics["gdpo/format/mean"] == pytest.approx(fmt.mean()) and metrics["gdpo/format/max"] == fmt.max()
    assert metrics["gdpo/correct/std"] == pytest.approx(np.array([c[1] for c in comps]).std())
    assert not any(k.startswith("gdpo/score/") or "collapse" in k for k in metrics)  # verl logs critic/score


def test_per_reward_figures_skip_text_and_missing_values_and_count_sessions_once():
    from gdpo_verl_plugins.reward_metrics import component_metrics

    comps = {"acc": [1.0, None, 0.0, True], "pred": ["a", "b", "c", "d"], "score": [1, 2, 3, 4], "n": ["1", 2, 3, 4]}
    out = component_metrics(comps, None)
    assert out["gdpo/acc/mean"] == pytest.approx(2 / 3) and out["gdpo/n/max"] == 4.0
    assert not any("pred" in k or "score" in k for k in out)
    final = (np.array([1, 3]), np.array([0, 0, 1, 1]))  # two sessions, their final outputs are rows 1 and 3
    assert component_metrics({"acc": [0.0, 1.0, 0.0, 0.0]}, final)["gdpo/acc/mean"] == 0.5


def test_unreadable_components_are_counted_and_warned_once(monkeypatch, caplog):
    from gdpo_verl_plugins import reward_metrics

    class Broken:
        def kv_batch_get(self, **kwargs):
            raise RuntimeError("storage unit gone")

    monkeypatch.setattr(reward_metrics, "_warned", False)
    meta = KVBatchMeta(keys=["u0_0_0"], tags=[{}], partition_id="train")
    for _ in range(2):
        metrics: dict = {}
        reward_metrics.log_v1(Broken(), meta, metrics)
        assert metrics == {"gdpo/reward_metrics_unavailable": 1.0}
    assert sum("storage unit gone" in r.getMessage() for r in caplog.records) == 1


def _padded(fake, keys, multiple, monkeypatch):
    """The batch as verl's V1 ``_balance_batch`` leaves it: upsampled by verl's own padding function (synthetic rows
    copied from row 0, tagged ``is_padding``), then reordered so padding rows sit between real ones."""
    from verl.trainer.ppo import padding_utils

    monkeypatch.setattr(padding_utils, "tq", fake)
    meta = KVBatchMeta(keys=list(keys), tags=[{"seq_len": 8} for _ in keys], partition_id="train")
    padded = padding_utils.upsample_batch_to_divisible_size(meta, multiple, eos_token_id=0)
    n = len(padded.keys)
    assert n % multiple == 0 and n > len(keys) and sum(t.get("is_padding", False) for t in padded.tags) == n - len(keys)
    padded.reorder(list(range(n))[::-1])  # padding rows first, real rows after, in reverse
    return padded


@pytest.mark.parametrize("estimator", ["gdpo", "grpo"])
@pytest.mark.parametrize("multi_output", [False, True], ids=["one_output", "multi_output_sessions"])
def test_padding_rows_count_nowhere(monkeypatch, estimator, multi_output):
    """verl pads a V1 batch to a multiple of lcm(dp size, mini-batch x n) with copies of row 0 (its reward
    components included). The real rows' advantages and every gdpo/* figure must be those of the unpadded batch;
    padding rows get exactly 0."""
    if multi_output:
        keys = ["u0_0_0", "u0_0_1", "u0_1_0", "u0_2_0", "u1_0_0", "u1_1_0", "u1_1_1", "u1_2_0", "u2_0_0", "u2_1_0"]
    else:
        keys = single_output_batch(4)[0]
    rng = np.random.default_rng(7)
    comps = [(float(rng.integers(0, 2)), float(rng.integers(0, 3)) / 2) for _ in keys]
    comps[0] = (1.0, 1.0)  # the row padding copies: far from the batch mean, so counting it would show
    lengths = [int(rng.integers(2, 7)) for _ in keys]
    alg = {"adv_estimator": estimator}

    plain = FakeTransferQueue()
    store(plain, keys, comps, lengths)
    expected, expected_metrics = run(trainer(**alg), plain, keys, monkeypatch)

    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    padded = _padded(fake, keys, 16, monkeypatch)
    monkeypatch.setattr(trainer_base, "tq", fake)
    metrics: dict = {}
    trainer(**alg)._compute_advantage(padded, metrics=metrics)

    for key, exp in zip(keys, expected, strict=True):
        torch.testing.assert_close(fake.rows[("train", key)]["advantages"], exp, atol=1e-6, rtol=1e-6)
    pads = [k for k, t in zip(padded.keys, padded.tags, strict=True) if t.get("is_padding")]
    for key in pads:
        assert torch.count_nonzero(fake.rows[("train", key)]["advantages"]) == 0
    assert {k for k in metrics if k.startswith("gdpo/")} == {k for k in expected_metrics if k.startswith("gdpo/")}
    assert any(k.startswith("gdpo/format/") for k in metrics)
    for name, value in expected_metrics.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name


def test_padding_rows_are_read_from_the_tag_not_the_key():
    from gdpo_verl_plugins import tq_rows

    keys = ["a_0_0", "a_1_0", "pad_0_0", "b_0_0"]
    final, owner = tq_rows.session_layout(keys, np.array([False, True, False, False]))
    # sessions in id order (a_0, b_0, pad_0); a 'pad' uid without the tag counts, a tagged row does not
    assert final.tolist() == [0, 3, 2] and owner.tolist() == [0, -1, 2, 1]
    assert tq_rows.padding_rows([{}, {"is_padding": True}, {"is_padding": False}]).tolist() == [False, True, False]


def test_a_transfer_queue_failure_on_reward_fields_is_raised_with_its_cause(monkeypatch):
    """Only a field TransferQueue does not hold (no column in its answer) counts as absent; a failing TransferQueue
    stops the step naming the fields and keeping the original error, instead of 'reward key not in the batch'."""
    from gdpo_verl_plugins.tq_rows import TransferQueueReadError

    class FailsOnRewardFields(FakeTransferQueue):
        def kv_batch_get(self, keys, partition_id, select_fields=None):
            if select_fields == KEYS:
                raise ConnectionError("storage unit 3 unreachable")
            return super().kv_batch_get(keys, partition_id, select_fields)

    keys, comps, lengths = single_output_batch(5)
    fake = FailsOnRewardFields()
    store(fake, keys, comps, lengths, top_level=True)
    with pytest.raises(TransferQueueReadError, match=r"\['format', 'correct'\].*storage unit 3") as e:
        run(trainer(), fake, keys, monkeypatch)
    assert isinstance(e.value.__cause__, ConnectionError)


def test_a_trainer_without_global_steps_is_a_shape_error_not_a_schedule_error(monkeypatch):
    from gdpo_verl_plugins.verl_shapes import VerlShapeError

    keys, comps, lengths = single_output_batch(6)
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    t = trainer()
    del t.global_steps
    with pytest.raises(VerlShapeError, match="no attribute 'global_steps'"):
        run(t, fake, keys, monkeypatch)


class _Tokenizer:
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids.tolist() if i != self.pad_token_id)


def test_v1_rollout_dump_holds_each_rows_components_and_analyze_reads_them(tmp_path, monkeypatch):
    """verl's own V1 ``_log_rollout_data`` (wrapped) on a padded batch of a GRPO run: every row of ``{step}.jsonl``
    carries its reward components and ``is_padding``; ``analyze rollouts --keys`` on that dump gives what it gives on
    a hand-written dump of the real rows."""
    from gdpo_verl.analysis.rollouts import analyze_rollouts

    keys, comps, lengths = single_output_batch(8)
    fake = FakeTransferQueue()
    store(fake, keys, comps, lengths)
    for key in keys:  # reward extra values named like verl's own columns do not replace them
        fake.rows[("train", key)]["extra_fields"]["reward_extra_info"].update(score=-5.0, output="spoof", step=99)
    padded = _padded(fake, keys, 16, monkeypatch)
    monkeypatch.setattr(trainer_base, "tq", fake)
    t = trainer(adv_estimator="grpo")
    t.tokenizer = _Tokenizer()
    t._init_dump_executor()
    t._log_rollout_data(padded, {}, str(tmp_path / "rollouts"))
    t._shutdown_dump_executor()

    rows = {r["uid"]: r for r in map(json.loads, (tmp_path / "rollouts" / "1.jsonl").read_text().splitlines())}
    assert set(rows) == set(padded.keys)
    for key, (f, c) in zip(keys, comps, strict=True):
        assert (rows[key]["format"], rows[key]["correct"], rows[key]["is_padding"]) == (f, c, False)
        assert rows[key]["score"] == pytest.approx(f + c) and rows[key]["step"] == 1  # verl's own columns
        assert rows[key]["output"] == " ".join(str(i) for i in range(1, lengths[keys.index(key)] + 1))
    assert sum(r["is_padding"] for r in rows.values()) == len(padded.keys) - len(keys)

    reference = tmp_path / "reference"
    reference.mkdir()
    with (reference / "1.jsonl").open("w") as out:
        for key, (f, c) in zip(keys, comps, strict=True):
            out.write(json.dumps({"uid": key, "step": 1, "format": f, "correct": c}) + "\n")
    got, used, notes = analyze_rollouts(tmp_path / "rollouts", keys=["format", "correct"])
    expected, _, _ = analyze_rollouts(reference, keys=["format", "correct"])
    assert used == ["format", "correct"] and got == expected and expected[0]["samples"] == len(keys)
    assert any("padding rows" in n for n in notes)


def test_validation_dumps_are_left_as_verl_writes_them(tmp_path, monkeypatch):
    t = trainer()
    t._init_dump_executor()
    t._dump_generations(["i"], ["o"], [None], [1.0], {"acc": [1.0]}, str(tmp_path))
    t._shutdown_dump_executor()
    assert json.loads((tmp_path / "1.jsonl").read_text()) == {
        "input": "i",
        "output": "o",
        "gts": None,
        "score": 1.0,
        "step": 1,
        "acc": 1.0,
    }


def test_cells_unwrap_tensordict_wrappers_but_not_numpy_scalars():
    from gdpo_verl_plugins.reward_metrics import component_metrics
    from gdpo_verl_plugins.tq_rows import scalar, unwrap
    from tensordict import NonTensorData

    assert unwrap(NonTensorData(data={"reward_extra_info": {"a": 1.0}})) == {"reward_extra_info": {"a": 1.0}}
    assert scalar(np.float64(0.25)) == 0.25 and scalar(torch.tensor([0.0, 0.75])) == 0.75
    # a reward function returning numpy scalars: its figures are logged like plain floats
    figures = component_metrics({"a": [np.float64(1.0), np.float32(0.0), np.int64(1)]}, None)
    assert figures["gdpo/a/mean"] == pytest.approx(2 / 3) and figures["gdpo/a/max"] == 1.0
