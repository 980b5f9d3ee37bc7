"""The launcher end to end on a CPU machine: OpenRLHF's own ``train_ppo_ray`` with ``--algo.advantage.estimator gdpo``
starts a local Ray with two fake GPUs (``RAY_OVERRIDE_RESOURCES``), creates the actor, reference and trainer actors;
the trainer's Ray worker builds ``GDPOExperienceMaker`` (through the worker setup hook); the run then stops at
OpenRLHF's first CUDA call (``torch.cuda.set_device`` in ``DeepspeedStrategy.setup_distributed``), which a CPU
machine cannot pass. Bounded by a timeout; the whole process group is killed after it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import stub_pythonpath

pytest.importorskip("openrlhf")

REWARD_FILE = """
from gdpo_verl_plugins.openrlhf.rewards import reward_func as _build

def components(query, prompt, label):
    return {"correct": float(label == "a"), "format": 1.0}


reward_func = _build(components, ["correct", "format"])
"""
BUILT = "gdpo-verl: OpenRLHF experience maker GDPOExperienceMaker computes GDPO advantages over ['correct', 'format']"


def _assets(root: Path) -> list[str]:
    from gdpo_verl.quickstart.assets import build_model, build_tokenizer

    model = root / "model"
    build_model(model, build_tokenizer(model))
    data = root / "prompts.jsonl"
    data.write_text("".join(json.dumps({"input": f"question {i}", "label": "ab"[i % 2]}) + "\n" for i in range(4)))
    reward = root / "reward_func.py"
    reward.write_text(REWARD_FILE)
    return [
        "--actor.model_name_or_path", str(model), "--data.prompt_dataset", str(data),
        "--data.input_key", "input", "--data.label_key", "label", "--reward.remote_url", str(reward),
        "--actor.num_gpus_per_node", "1", "--ref.num_gpus_per_node", "1",
        "--rollout.n_samples_per_prompt", "2", "--rollout.batch_size", "2", "--rollout.micro_batch_size", "1",
        "--train.batch_size", "4", "--train.micro_batch_size", "1", "--data.max_len", "64",
        "--algo.advantage.estimator", "gdpo", "--gdpo.reward_keys", "correct,format",
    ]  # fmt: skip


def test_launcher_reaches_first_cuda_call_with_gdpo_maker(tmp_path):
    argv = _assets(tmp_path)
    ray_tmp = tempfile.mkdtemp(prefix="gr", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    env = {
        **os.environ,
        "PYTHONPATH": stub_pythonpath(),
        "RAY_OVERRIDE_RESOURCES": json.dumps({"GPU": 2, "CPU": 8}),
        "RAY_TMPDIR": ray_tmp,
        "RAY_DEDUP_LOGS": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "gdpo_verl_plugins.openrlhf.train_ppo_ray", *argv]
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"launcher did not stop within 480 s:\n{output[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        worker_logs = "".join(
            p.read_text(errors="replace") for p in Path(ray_tmp).rglob("worker-*") if p.suffix in (".out", ".err")
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    tail = output[-6000:]
    assert proc.returncode != 0, tail
    assert BUILT in output + worker_logs, tail  # the trainer actor built our experience maker
    # and stopped at OpenRLHF's first CUDA call (a CPU torch has no torch._C._cuda_setDevice)
    assert "strategy.setup_distributed()" in output and "torch.cuda.set_device(local_rank)" in output, tail
    assert "GDPO on OpenRLHF cannot run" not in output and "Traceback" in output, tail
