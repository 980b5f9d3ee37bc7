"""End to end on the V1 trainer with verl's batch padding: the real ``main_ppo`` pads each step's 64 rows to 72
(``ppo_mini_batch_size=6`` x n=4 does not divide 64) with synthetic ``is_padding`` rows copied from row 0.

Checks, at every step: the per-reward means GDPO logs add up to verl's ``critic/score/mean`` (which leaves padding
rows out), and verl's rollout dump carries each row's reward components and ``is_padding``, which ``gdpo-verl analyze
rollouts --keys`` reads. About 2 min on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("verl")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]

STEPS = 2
TIMEOUT_S = 480
ROWS, PADDED = 64, 72  # 16 prompts x 4 rollouts, padded to a multiple of lcm(1, 6 x 4)
PADDING_OVERRIDES = (
    "actor_rollout_ref.actor.ppo_mini_batch_size=6",
    "actor_rollout_ref.actor.use_dynamic_bsz=True",
    "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=512",
    "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=True",
    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=512",
)


@pytest.fixture(scope="module")
def padded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("padded") / "run"
    cmd = [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--steps", str(STEPS), "--out", str(out)]
    cmd += ["--timeout", str(TIMEOUT_S - 30), "--", *PADDING_OVERRIDES]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GDPO_VERL_CPU", None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    log = (out / "verl.log").read_text() if (out / "verl.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{log[-4000:]}"
    return out


def test_per_reward_means_add_up_to_verls_score_mean(padded_run):
    records = [json.loads(line) for line in (padded_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for rec in records:
        data = rec["data"]
        assert data["gdpo/impl"] == 1.0
        summed = data["gdpo/format/mean"] + data["gdpo/correct/mean"]
        assert summed == pytest.approx(data["critic/score/mean"], abs=1e-5), (rec["step"], summed)


def test_rollout_dump_holds_components_and_padding_rows_are_marked(padded_run):
    for step in range(1, STEPS + 1):
        rows = [json.loads(line) for line in (padded_run / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
        assert len(rows) == PADDED and sum(r["is_padding"] for r in rows) == PADDED - ROWS
        for r in rows:
            if not r["is_padding"]:
                assert r["format"] + r["correct"] == pytest.approx(r["score"], abs=1e-5)

    proc = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "analyze", "rollouts", str(padded_run / "rollouts")]
        + ["--keys", "format,correct", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["step"] for r in reports] == list(range(1, STEPS + 1))
    assert all(r["samples"] == ROWS and r["groups"] == ROWS // 4 for r in reports)
    assert "padding rows" in proc.stderr
