"""End to end: `gdpo-verl check --rehearse` runs a shipped recipe's own command on this CPU (one step with a
checkpoint, then a resumed second step) for one Megatron recipe (TP 2, 2 CPU workers) and one FSDP2 recipe, and a
mistake that only a run can reveal (a reward function that raises on real rows would be counted as NaN; a misspelled
enum value of a loss setting is not) stops it. A few minutes per recipe on 2 cores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1200


def _rehearse(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gdpo_verl.cli", "check", "-q", "--script", str(ROOT / "examples" / script)]
    cmd += ["--rehearse", "--rehearse-dir", str(tmp_path / "rehearsal"), "--", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path)


@pytest.mark.parametrize(
    ("script", "args", "backend"),
    [
        ("gsm8k_qwen2_5_1_5b.sh", [], "megatron"),  # Megatron TP 2: the model-parallel path every recipe defaults to
        ("tool_qwen2_5_1_5b.sh", ["--fsdp2"], "fsdp2"),  # FSDP2, KL in the reward
    ],
)
def test_recipe_rehearses_with_save_and_resume(tmp_path: Path, script: str, args: list[str], backend: str) -> None:
    if backend == "megatron":
        pytest.importorskip("megatron.core", reason="install with scripts/install_cpu.sh --megatron")
    out = _rehearse(tmp_path, script, *args)
    text = out.stdout + out.stderr[-3000:]
    assert out.returncode == 0, text
    assert "rehearse: substitution: actor_rollout_ref.rollout.name=vllm -> hf_cpu" in out.stdout
    assert "rehearse: step 1 + checkpoint ok" in out.stdout and "rehearse: resume + step 2 ok" in out.stdout
    ckpt = tmp_path / "rehearsal" / "checkpoints"
    assert (ckpt / "global_step_1").is_dir() and (ckpt / "global_step_2").is_dir()
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "2"


def test_a_misspelled_loss_setting_fails_the_rehearsal(tmp_path: Path) -> None:
    """verl reads actor.loss_agg_mode only inside the actor's update: the static check cannot see the typo."""
    out = _rehearse(tmp_path, "tool_qwen2_5_1_5b.sh", "--fsdp2", "actor_rollout_ref.actor.loss_agg_mode=token-means")
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    assert "rehearse: FAIL at step 1 + checkpoint" in out.stdout


def test_a_reward_that_raises_on_real_rows_fails_the_rehearsal(tmp_path: Path) -> None:
    """gdpo_multi turns a failing reward into a missing value (no crash on the cluster, just no signal): the
    rehearsal reports it."""
    bad = tmp_path / "bad_reward.py"
    bad.write_text("def format_score(solution_str, ground_truth, **kwargs):\n    raise KeyError('tool_calls')\n")
    rewards = f"++reward.gdpo_multi.rewards=[{{name:format,fn:'{bad}:format_score'}},{{name:correctness}}]"
    out = _rehearse(tmp_path, "tool_qwen2_5_1_5b.sh", "--fsdp2", rewards)
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    assert "rehearse: FAIL at step 1 + checkpoint: reward(s) missing on the rehearsal's rows: format (100% of" in (
        out.stdout
    )
