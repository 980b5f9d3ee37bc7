"""End to end: the real, unchanged ``python -m verl.trainer.main_ppo`` trains 2 GDPO steps on this CPU.

Runs ``gdpo-verl quickstart --steps 2`` (tiny local Qwen2, two rewards) on both verl trainer paths, each bounded by a
subprocess timeout, and checks that our GDPO estimator (not verl's built-in ``gdpo``) made finite advantages and that
the per-reward metrics reached verl's own ``file`` logger. About 1.5 min per trainer path on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from gdpo_verl.analysis.rollouts import analyze_rollouts

pytest.importorskip("verl")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]

STEPS = 2
TIMEOUT_S = 480  # hard bound for one main_ppo run (assets, Ray start-up, 2 steps, shutdown)
REWARD_KEYS = ("format", "correct")
OURS_MARKER = "gdpo/impl"  # logged (= 1.0) by gdpo_verl's estimator only
VERL_BUILTIN_SUFFIXES = ("/mean", "/std", "/min", "/max")  # verl's built-in gdpo logs only these per reward


def _run_quickstart(out, legacy: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--steps", str(STEPS), "--out", str(out)]
    cmd += ["--timeout", str(TIMEOUT_S - 30)] + (["--legacy"] if legacy else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GDPO_VERL_CPU", None)  # the quickstart forces CPU mode itself
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize("legacy", [False, True], ids=["v1_trainer", "legacy_trainer"])
def test_two_gdpo_steps_on_cpu(tmp_path, legacy):
    proc = _run_quickstart(tmp_path, legacy)
    log = (tmp_path / "verl.log").read_text() if (tmp_path / "verl.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{log[-4000:]}"

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for rec in records:
        data = rec["data"]
        # our estimator ran, not verl's built-in gdpo
        assert data.get(OURS_MARKER) == 1.0, sorted(k for k in data if k.startswith("gdpo/"))
        assert any(k.startswith("gdpo/") and not k.endswith(VERL_BUILTIN_SUFFIXES) for k in data)
        # per-reward metrics were logged
        for key in REWARD_KEYS:
            assert 0.0 <= data[f"gdpo/{key}/mean"] <= 1.0
            assert data[f"gdpo/{key}/missing_frac"] == 0.0
        # every advantage is finite
        for name in ("critic/advantages/max", "critic/advantages/min", "critic/advantages/mean"):
            assert math.isfinite(data[name]), (name, data[name])
        assert data["critic/advantages/max"] > data["critic/advantages/min"]  # a learning signal exists

    assert sorted(p.name for p in (tmp_path / "rollouts").glob("*.jsonl")) == [f"{s}.jsonl" for s in (1, 2)]
    # each dumped row carries its reward components (verl writes them on legacy, our dump hook on V1)
    reports, keys, _ = analyze_rollouts(tmp_path / "rollouts", keys=list(REWARD_KEYS))
    assert keys == list(REWARD_KEYS) and [r["step"] for r in reports] == [1, 2]
    assert all(r["samples"] == 64 and r["missing"] == {k: 0 for k in REWARD_KEYS} for r in reports)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["returncode"] == 0 and summary["trainer"] == ("legacy" if legacy else "v1")
    assert (tmp_path / "curves.png").exists()
