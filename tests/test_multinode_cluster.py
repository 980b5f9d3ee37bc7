"""``quickstart --nodes``: the overrides that make verl join a cluster (composed with verl's own Hydra config), the
layout checks, the client environment, the Ray folder, and how placements are shown (no cluster started here; the
two-node run is tests/e2e/test_multinode.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gdpo_verl.quickstart import cluster, command
from gdpo_verl.quickstart.assets import Assets

ASSETS = Assets(Path("/a/model"), Path("/a/train.parquet"), Path("/a/val.parquet"))
ADDRESS = "127.0.0.1:6380"


def _joined_overrides(nodes: int = 2, batch_size: int = 16, n: int = 4, env: dict | None = None) -> list[str]:
    cfg = command.RunConfig(out=Path("/o"), batch_size=batch_size, n=n, extra=("trainer.logger=[console]",))
    env = cluster.worker_env(command.environment(cfg)) if env is None else env
    return command.overrides(cluster._joined(cfg, ADDRESS, nodes, env), ASSETS)


def test_join_overrides_compose_with_verls_config_as_a_joining_driver():
    pytest.importorskip("verl")
    from gdpo_verl.check.compose import Composer

    composed = Composer().compose(_joined_overrides())
    assert composed.cfg is not None, [f.message for f in composed.findings]
    ray_init = composed.cfg.ray_kwargs.ray_init
    assert ray_init.address == ADDRESS
    assert ray_init.num_cpus is None and "num_gpus" not in ray_init  # Ray refuses resources when joining
    env_vars = dict(ray_init.runtime_env.env_vars)
    assert env_vars["GDPO_VERL_CPU"] == "1" and env_vars["VERL_FILE_LOGGER_PATH"] == "/o/metrics.jsonl"
    assert all(type(v) is str for v in env_vars.values()), env_vars  # Ray's runtime_env takes strings only
    trainer = composed.cfg.trainer
    assert (trainer.nnodes, trainer.n_gpus_per_node) == (2, 1)
    assert composed.cfg.trainer.logger == ["console"]  # the user's own overrides still come last and win


@pytest.mark.parametrize(("nodes", "batch_size", "n"), [(2, 16, 4), (4, 16, 4), (2, 6, 3), (3, 9, 2)])
def test_micro_batches_divide_each_ranks_share(nodes, batch_size, n):
    ov = dict(o.lstrip("+").split("=", 1) for o in _joined_overrides(nodes, batch_size, n, env={}) if "=" in o)
    # verl's FSDP workers: mini-batch (prompts) x n / data-parallel size samples per rank, split in micro-batches
    per_rank = batch_size * n / nodes
    for key in (
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
    ):
        micro = int(ov[key])
        assert per_rank % micro == 0 and micro <= per_rank, (key, micro, per_rank)
    assert int(ov["actor_rollout_ref.actor.ppo_mini_batch_size"]) * n % nodes == 0


def test_layout_checks_name_the_fix():
    with pytest.raises(ValueError, match="multiple of 2"):
        cluster.check_layout(2, "fsdp2", batch_size=15, n=4)
    with pytest.raises(ValueError, match="FSDP2 actor only"):
        cluster.check_layout(2, "megatron", batch_size=16, n=4)
    with pytest.raises(ValueError, match=">= 1"):
        cluster.check_layout(0, "fsdp2", batch_size=16, n=4)
    cluster.check_layout(2, "fsdp2", batch_size=16, n=4)


def test_quoted_env_values_reach_ray_as_the_same_strings():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for value in ("1", "false", "/a b/c.jsonl", 'say "x"', "it's", "C:\\dir"):
        assert parser.parse_override(f"+a.b={cluster._quoted(value)}").value() == value


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1:6379", True), ("localhost:1", True), ("ray://127.0.0.1:10001", True), ("10.0.0.5:6379", False)],
)
def test_loopback_clients_keep_the_loopback_address(address, loopback):
    assert cluster.is_loopback(address) is loopback
    assert cluster.client_env(address) == ({"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} if loopback else {})


def test_ray_folder_is_the_runs_own_and_short_enough_for_unix_sockets(tmp_path):
    short = Path("/tmp/q")
    assert cluster.ray_tmpdir(short) == (short / "ray", False)
    long_out = tmp_path / ("x" * 80)
    folder, fresh = cluster.ray_tmpdir(long_out)
    try:
        assert fresh and folder.is_dir() and folder != Path("/tmp/ray") and folder.name.startswith("gdpo-ray-")
        socket = folder / "ray" / "session_2026-12-05_14-44-40_877924_4194304" / "sockets" / "plasma_store.99"
        assert len(str(socket)) <= 107
    finally:
        folder.rmdir()


def test_placements_one_line_per_node_head_first():
    actors = [
        {"class": "WorkerDict", "node_id": "bbbbbbbb22", "state": "DEAD", "pid": 3, "death": ""},
        {"class": "WorkerDict", "node_id": "aaaaaaaa11", "state": "DEAD", "pid": 1, "death": ""},
        {"class": "HFServer", "node_id": "aaaaaaaa11", "state": "DEAD", "pid": 2, "death": ""},
        {"class": "RewardLoopWorker", "node_id": "aaaaaaaa11", "state": "DEAD", "pid": 4, "death": ""},
        {"class": "RewardLoopWorker", "node_id": "aaaaaaaa11", "state": "DEAD", "pid": 5, "death": ""},
    ]
    assert cluster.describe_placements(actors, ["aaaaaaaa11", "bbbbbbbb22"]) == [
        "  node 0 (head) aaaaaaaa: HFServer, RewardLoopWorker x2, WorkerDict",
        "  node 1 bbbbbbbb: WorkerDict",
    ]


def test_death_cause_names_the_reason():
    pytest.importorskip("ray")
    from ray.core.generated import common_pb2

    from gdpo_verl.quickstart.cluster_host import _death

    cause = common_pb2.ActorDeathCause()
    assert _death(cause) == ""
    cause.actor_died_error_context.reason = common_pb2.ActorDiedErrorContext.Reason.Value("OWNER_DIED")
    cause.actor_died_error_context.error_message = "the owner exited\nmore"
    assert _death(cause) == "actor_died_error_context:OWNER_DIED: the owner exited"


def test_cli_refuses_a_batch_that_does_not_split(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--nodes", "2", "--batch-size", "15", "--dry-run"]
        + ["--out", str(tmp_path / "q")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 2 and "multiple of 2" in out.stderr, out.stderr


def test_a_cluster_that_cannot_start_is_reported_and_leaves_nothing():
    pytest.importorskip("ray")
    short = Path(tempfile.mkdtemp(prefix="gdpo-test-"))  # short enough for Ray's sockets: the head's GCS starts
    try:
        local = cluster.LocalCluster(1, short / "ray", short / "ray_cluster.log", cpus_per_node=-1)
        with pytest.raises(cluster.ClusterStartError, match="did not start") as raised:
            local.start()
        assert "Resource quantities must be nonnegative" in str(raised.value)  # Ray's own error, from the log
        assert local.alive_pids() == []  # the GCS server it had started is gone
    finally:
        shutil.rmtree(short, ignore_errors=True)
