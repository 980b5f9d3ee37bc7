"""End to end: verl's Megatron actor and reference, TP=2 x PP=2 (4 CPU workers), in the real ``main_ppo``.

One run of ``gdpo-verl quickstart --backend megatron --tp 2 --pp 2`` exercises, besides GDPO itself: the Megatron
reference model with KL loss and KL in the reward, DAPO dynamic sampling on ``gdpo_signature`` (rewards from
``gdpo_multi``), a conditioned reward (``+algorithm.gdpo.conditions``) and a checkpoint at step 2. A second run
resumes from that checkpoint and trains one more step. Every step must log the per-reward metrics, no NaN, and
rollout/actor probabilities that agree (``training/rollout_actor_probs_pearson_corr`` > 0.999: the Megatron weights
were loaded from the Hugging Face model and synced back to the rollout correctly). About 3-4 min on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from gdpo_verl.quickstart import task

pytest.importorskip("verl")
pytest.importorskip("megatron.core", reason="install with scripts/install_cpu.sh --megatron")
pytest.importorskip("mbridge", reason="install with scripts/install_cpu.sh --megatron")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]

TIMEOUT_S = 600  # hard bound for one main_ppo run
REWARD_KEYS = ("format", "correct")
TASK = "gdpo_verl.quickstart.task"
FEATURES = (
    # the reference model: KL loss in the actor and KL in the reward
    "actor_rollout_ref.actor.use_kl_loss=True",
    "actor_rollout_ref.actor.kl_loss_coef=0.01",
    "algorithm.use_kl_in_reward=True",
    "algorithm.kl_ctrl.kl_coef=0.01",
    # rewards from gdpo_multi, which emits gdpo_signature for DAPO dynamic sampling
    "reward.reward_manager.name=gdpo_multi",
    "reward.custom_reward_function.path=null",
    f"+reward.gdpo_multi.rewards=[{{name:format,fn:'{TASK}:format_score'}},{{name:correct,fn:'{TASK}:correct_score'}}]",
    "+reward.gdpo_multi.max_workers=0",
    "algorithm.filter_groups.enable=True",
    "algorithm.filter_groups.metric=gdpo_signature",
    "algorithm.filter_groups.max_inflight_gen_batches=16",
    # paper Eq. 8: `correct` counts only where `format` >= 0.5
    "+algorithm.gdpo.conditions={correct:{on:format,threshold:0.5}}",
    # a checkpoint every 2 steps, found again by the resumed run
    "trainer.save_freq=2",
    "trainer.resume_mode=auto",
)


def _quickstart(out, steps: int, resume: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--backend", "megatron", "--tp", "2", "--pp", "2"]
    cmd += ["--steps", str(steps), "--out", str(out), "--timeout", str(TIMEOUT_S - 30), *(["--resume"] * resume)]
    cmd += ["--", *FEATURES]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GDPO_VERL_CPU", None)  # the quickstart switches CPU mode on itself
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=out)


def _records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _check_step(data: dict) -> None:
    nonfinite = sorted(k for k, v in data.items() if isinstance(v, float) and math.isnan(v))
    assert not nonfinite, nonfinite
    assert data["gdpo/impl"] == 1.0  # our estimator, not verl's built-in gdpo
    for key in REWARD_KEYS:
        assert 0.0 <= data[f"gdpo/{key}/mean"] <= 1.0
        assert data[f"gdpo/{key}/missing_frac"] == 0.0
    assert data["training/rollout_actor_probs_pearson_corr"] > 0.999
    assert math.isfinite(data["actor/grad_norm"]) and data["actor/grad_norm"] > 0
    assert data["critic/advantages/max"] > data["critic/advantages/min"]


def _check_condition(out, step: int, data: dict) -> float:
    """``gdpo/correct/mean`` is the conditioned value (0 where format < 0.5), recomputed from verl's rollout dump.

    Returns the raw (unconditioned) mean, so the caller can check the condition changed something."""
    rows = [json.loads(line) for line in (out / "rollouts" / f"{step}.jsonl").read_text().splitlines() if line]
    fmt = [task.format_reward(r["output"]) for r in rows]
    cor = [task.correct_reward(r["output"], str(r["gts"])) for r in rows]
    conditioned = [c if f >= 0.5 else 0.0 for c, f in zip(cor, fmt, strict=True)]
    assert data["gdpo/correct/mean"] == pytest.approx(sum(conditioned) / len(rows), abs=1e-9)
    assert data["gdpo/format/mean"] == pytest.approx(sum(fmt) / len(rows), abs=1e-9)
    return sum(cor) / len(rows)


def _fail(proc, out) -> str:
    log = (out / "verl.log").read_text()[-5000:] if (out / "verl.log").exists() else ""
    return f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{log}"


def test_megatron_tp2_pp2_with_reference_dapo_conditions_and_resume(tmp_path):
    first = _quickstart(tmp_path, steps=2)
    assert first.returncode == 0, _fail(first, tmp_path)
    records = _records(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    raw_correct = []
    for rec in records:
        _check_step(rec["data"])
        raw_correct.append(_check_condition(tmp_path, rec["step"], rec["data"]))
    # the reference model: the actor starts equal to it, then moves away after one update
    step2 = records[1]["data"]
    assert records[0]["data"]["actor/kl_loss"] == pytest.approx(0.0, abs=1e-6)
    assert step2["actor/kl_loss"] > 0 and step2["actor/reward_kl_penalty"] > 0  # KL loss and KL in the reward
    # DAPO on gdpo_signature evicted groups whose reward vectors were all equal, and refilled the batch
    assert sum(r["data"].get("training/filter_groups/evicted_samples", 0) for r in records) > 0
    # the condition changed what the estimator saw
    assert any(
        r != pytest.approx(rec["data"]["gdpo/correct/mean"]) for r, rec in zip(raw_correct, records, strict=True)
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "megatron" and (summary["tp"], summary["pp"]) == (2, 2)
    assert (tmp_path / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"

    resumed = _quickstart(tmp_path, steps=3, resume=True)
    assert resumed.returncode == 0, _fail(resumed, tmp_path)
    records = _records(tmp_path)
    assert [r["step"] for r in records] == [3]  # started from the step-2 checkpoint, trained exactly one step
    _check_step(records[0]["data"])
    _check_condition(tmp_path, 3, records[0]["data"])
