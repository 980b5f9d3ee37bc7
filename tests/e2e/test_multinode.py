"""End to end on two Ray nodes: ``gdpo-verl quickstart --nodes 2`` starts a local two-node cluster on 127.0.0.1, the
unchanged verl ``main_ppo`` joins it and trains 2 GDPO steps data parallel 2, and everything is torn down.

Checked from what verl and Ray recorded, not from our own output: the actor table of the cluster's GCS
(placements.json) shows one FSDP2 actor worker on each node with a rollout server beside it and the reward loop's
worker ending with the job (not crashed); verl's ``file`` logger has the same full set of ``gdpo/*`` metrics at every
step; afterwards no process of the run is left (found by the run's RAY_TMPDIR in each process's environment) and no
Ray address file exists. A second test sends SIGTERM mid-run and checks the same teardown; a third runs on an
existing cluster (``--ray-address``), which it leaves running. One host, no real network: docs/multinode.md says what
this does not cover.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("verl")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]

STEPS = 2
TIMEOUT_S = 600
REWARD_KEYS = ("format", "correct")
ACTOR_WORKER = "WorkerDict"  # verl's colocated actor/rollout/ref worker class
ROLLOUT_SERVER = "HFServer"  # the CPU plugin's rollout server, started on the node of its replica's first worker
REWARD_WORKER = "RewardLoopWorker"
# How an actor that simply ended with the job is recorded: its owner (the driver) exited, or no reference was left.
ENDED_WITH_JOB = ("OWNER_DIED", "OUT_OF_SCOPE", "REF_DELETED")
DEFAULT_ADDRESS_FILE = Path("/tmp/ray/ray_current_cluster")  # where a plain ray.init() looks


def _cmd(out: Path, steps: int = STEPS) -> list[str]:
    return [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--nodes", "2", "--steps", str(steps)]


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GDPO_VERL_CPU", None)  # must reach the workers through the run's runtime_env
    return env


def _ray_tmpdir(stdout: str) -> str:
    found = re.search(r"RAY_TMPDIR=(\S+)\)", stdout)
    assert found, stdout[-2000:]
    return found.group(1)


def _processes_of(ray_tmpdir: str) -> list[str]:
    """Processes that carry this run's RAY_TMPDIR (every Ray daemon and worker of the run inherits it)."""
    left = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get("RAY_TMPDIR") == ray_tmpdir and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {proc.info['name']}")
        except psutil.Error:
            continue
    return left


def _names(pids: list[int]) -> list[str]:
    names = []
    for pid in pids:
        try:
            names.append(psutil.Process(pid).name())
        except psutil.Error:
            continue
    return names


def _address_files(out: Path, ray_tmpdir: str) -> list[str]:
    return [str(p) for root in {out, Path(ray_tmpdir)} if root.exists() for p in root.rglob("ray_current_cluster")]


def _default_address_file() -> tuple[bool, float]:
    return DEFAULT_ADDRESS_FILE.exists(), DEFAULT_ADDRESS_FILE.stat().st_mtime if DEFAULT_ADDRESS_FILE.exists() else 0


def test_two_nodes_two_gdpo_steps(tmp_path):
    out = tmp_path / "qs"
    before = _default_address_file()
    started = time.monotonic()
    proc = subprocess.run(
        [*_cmd(out), "--out", str(out), "--timeout", str(TIMEOUT_S - 60)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    wall_s = time.monotonic() - started
    log = (out / "verl.log").read_text()[-4000:] if (out / "verl.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{log}"
    summary = json.loads((out / "summary.json").read_text())
    print(f"\ntwo-node quickstart: {wall_s:.0f} s wall (whole command), peak memory {summary['peak_mem_mb']} MiB")

    # Where verl's actors ran, from the cluster's own actor table.
    actors = json.loads((out / "placements.json").read_text())
    workers = [a for a in actors if a["class"] == ACTOR_WORKER]
    worker_nodes = {a["node_id"] for a in workers}
    assert len(workers) == 2 and len(worker_nodes) == 2, actors  # one actor worker on each node
    servers = {a["node_id"] for a in actors if a["class"] == ROLLOUT_SERVER}
    assert servers == worker_nodes, actors  # a rollout server beside each worker
    rewards = [a for a in actors if a["class"] == REWARD_WORKER]
    assert rewards, actors
    for a in rewards:  # started, ran, and ended with the job rather than by a crash
        assert a["pid"] > 0 and a["death"].split(":")[1] in ENDED_WITH_JOB, a
    assert "where verl's actors ran:" in proc.stdout and "node 1 " in proc.stdout

    # Every gdpo/* metric at every step (verl's own file logger, written by the TaskRunner on a node).
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    per_step = [{k for k in r["data"] if k.startswith("gdpo/")} for r in records]
    assert per_step[0] == per_step[-1], per_step
    for rec in records:
        data = rec["data"]
        assert data["gdpo/impl"] == 1.0  # gdpo_verl's estimator, not verl's built-in gdpo
        for key in REWARD_KEYS:
            assert 0.0 <= data[f"gdpo/{key}/mean"] <= 1.0
            assert data[f"gdpo/{key}/missing_frac"] == 0.0
    assert "trainer.nnodes=2" in (out / "command.txt").read_text()

    # Nothing left behind: no process of the run, no Ray address file (ours or the default one).
    ray_tmpdir = _ray_tmpdir(proc.stdout)
    assert _processes_of(ray_tmpdir) == []
    assert _address_files(out, ray_tmpdir) == []
    assert _default_address_file() == before


def test_sigterm_mid_run_tears_the_cluster_down(tmp_path):
    out = tmp_path / "qs"
    before = _default_address_file()
    proc = subprocess.Popen(
        [*_cmd(out, steps=20), "--out", str(out)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = ""
    try:
        deadline = time.monotonic() + 240
        while "verl joins the cluster" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "verl joins the cluster" in seen, seen
        time.sleep(8)  # verl is connecting and starting workers on both nodes
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, seen + rest
    ray_tmpdir = _ray_tmpdir(seen)
    deadline = time.monotonic() + 10
    while _processes_of(ray_tmpdir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_of(ray_tmpdir) == []
    assert _address_files(out, ray_tmpdir) == []
    assert _default_address_file() == before


def test_ray_address_runs_on_an_existing_cluster_and_leaves_it_running(tmp_path):
    from gdpo_verl.quickstart import cluster

    folder, fresh = cluster.ray_tmpdir(tmp_path)
    local = cluster.LocalCluster(2, folder, tmp_path / "ray_cluster.log")
    out = tmp_path / "qs"
    try:
        with local:
            proc = subprocess.run(
                [*_cmd(out, steps=1), "--ray-address", local.address, "--out", str(out)],
                env={**_env(), **local.environment()},
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
            daemons = sorted(_names(local.alive_pids()))
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert daemons.count("raylet") == 2 and "gcs_server" in daemons, daemons  # the cluster is left running
        actors = json.loads((out / "placements.json").read_text())
        assert {a["node_id"] for a in actors if a["class"] == ACTOR_WORKER} == set(local.node_ids)
        assert "starting a local" not in proc.stdout
        assert local.alive_pids() == []
    finally:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
