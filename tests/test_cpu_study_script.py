"""scripts/cpu_study.sh: which quickstart runs it starts (a stand-in gdpo-verl on PATH records them), resuming."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cpu_study.sh"
FAKE = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [[ "$1" == quickstart ]]; then
  while [[ $# -gt 0 ]]; do [[ "$1" == --out ]] && out="$2"; shift; done
  mkdir -p "$out" && echo '{"returncode": 0}' > "$out/summary.json"
fi
"""


def run_script(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gdpo-verl").write_text(FAKE)
    (bin_dir / "gdpo-verl").chmod(0o755)
    calls = tmp_path / "calls.txt"
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), **env}
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=60)
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_default_study_is_gdpo_and_grpo_on_the_first_task(tmp_path):
    proc, calls = run_script(tmp_path, str(tmp_path / "s"), "7", "1")
    assert proc.returncode == 0, proc.stderr
    assert (
        calls[0] == f"quickstart --task find_digit --steps 7 --seed 0 --estimator gdpo --out {tmp_path}/s/gdpo/seed0 --"
    )
    assert calls[1].startswith("quickstart --task find_digit --steps 7 --seed 0 --estimator grpo")
    assert calls[2] == f"analyze study {tmp_path}/s --out {tmp_path}/s/study.png --json {tmp_path}/s/study.json"


def test_arms_task_knobs_and_resume(tmp_path):
    out = tmp_path / "s"
    env = dict(
        TASK="two_binary",
        ARMS="grpo gdpo_cond conflict",
        NICE="3",
        QUICKSTART_ARGS="--n 8 --lr 1e-2",
        OVERRIDES="actor_rollout_ref.actor.ppo_epochs=4",
    )
    (out / "grpo" / "seed1").mkdir(parents=True)
    (out / "grpo" / "seed1" / "summary.json").write_text('{"returncode": 0}')  # finished: kept
    (out / "conflict" / "seed1").mkdir(parents=True)
    (out / "conflict" / "seed1" / "summary.json").write_text('{"returncode": 1}')  # failed: run again
    proc, calls = run_script(tmp_path, str(out), "5", "2", **env)
    assert proc.returncode == 0, proc.stderr
    runs = [c for c in calls if c.startswith("quickstart")]
    assert [c.split("--out ")[1].split()[0].split("/s/")[1] for c in runs] == [
        "grpo/seed0", "gdpo_cond/seed0", "conflict/seed0", "gdpo_cond/seed1", "conflict/seed1"
    ]  # fmt: skip
    assert runs[0].endswith(
        f"--estimator grpo --out {tmp_path}/s/grpo/seed0 --n 8 --lr 1e-2 -- actor_rollout_ref.actor.ppo_epochs=4"
    )
    assert runs[1].endswith("ppo_epochs=4 +algorithm.gdpo.conditions={letter:{on:digit,threshold:1.0}}")
    assert "--estimator gdpo" in runs[2] and runs[2].endswith("+algorithm.gdpo.aggregation=conflict")
    assert [" --overwrite " in r for r in runs] == [False, False, False, False, True]  # the failed run is replaced
    assert "== " in proc.stdout


def test_unknown_arm_or_task_stops_before_any_run(tmp_path):
    proc, calls = run_script(tmp_path, str(tmp_path / "s"), "5", "1", ARMS="gdpo nope")
    assert proc.returncode == 2 and "unknown arm nope" in proc.stderr and calls == []
    proc, calls = run_script(tmp_path, str(tmp_path / "s"), "5", "1", TASK="nope")
    assert proc.returncode == 2 and "unknown TASK=nope" in proc.stderr and calls == []
