"""``gdpo-verl quickstart --nodes N`` / ``--ray-address ADDR``: the same training across several Ray nodes.

A local cluster is N Ray nodes on 127.0.0.1, held by one process (:mod:`.cluster_host`) in its own session; it is
torn down by PID when the run ends, fails or is signalled. verl's unchanged ``main_ppo`` joins it instead of starting
Ray (``+ray_kwargs.ray_init.address``), runs data parallel N (one CPU worker per node), and gets the environment its
workers need through ``ray_kwargs.ray_init.runtime_env.env_vars`` (the nodes' own environment is not the driver's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gdpo_verl.quickstart import command, runner
from gdpo_verl.quickstart.process_tree import MARKER_VAR, ProcessTree, new_marker

# Every client of a loopback cluster: keep 127.0.0.1 as the node address (Ray otherwise takes the host's own address
# and finds no node there). A cluster this module starts also has token auth off explicitly: Ray turns it on for a
# head when ~/.ray/auth_token exists, but not for a joining node or a client.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
LOCAL_CLUSTER_ENV = {**LOOPBACK_ENV, "RAY_AUTH_MODE": "disabled"}
# What verl's processes on the nodes need from the quickstart's environment (command.environment).
WORKER_ENV_KEYS = (
    "GDPO_VERL_CPU",
    "VERL_FILE_LOGGER_PATH",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "TOKENIZERS_PARALLELISM",
    "PYTHONUNBUFFERED",
)
CPUS_PER_NODE = 8  # Ray CPU slots per node: the TaskRunner, agent-loop, reward-loop and TransferQueue actors
MAX_SOCKET_PATH = 107  # AF_UNIX path limit; Ray puts its sockets under RAY_TMPDIR/ray/session_<time>_<pid>/sockets/
_SOCKET_SUFFIX = len("/ray/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store.99")


class ClusterStartError(RuntimeError):
    """The local cluster did not come up (it has been torn down); the message ends with its log."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="Ray nodes, data parallel over them (one CPU worker each); N >= 2 starts a local N-node cluster on "
        "127.0.0.1 unless --ray-address is given (docs/multinode.md)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="run on this existing Ray cluster (its nodes each offer 1 GPU resource) instead of starting one",
    )


def requested(args: argparse.Namespace) -> bool:
    return args.nodes > 1 or bool(args.ray_address)


def check_layout(nodes: int, backend: str, batch_size: int, n: int) -> None:
    """Raise ValueError for what cannot run data parallel over ``nodes``, naming the fix."""
    if nodes < 1:
        raise ValueError(f"--nodes must be >= 1, got {nodes}")
    if backend != "fsdp2":
        raise ValueError("--nodes / --ray-address run the FSDP2 actor only (one CPU worker per node); drop --backend")
    if batch_size % nodes:
        raise ValueError(
            f"--batch-size {batch_size} does not split over {nodes} nodes: verl gives every data-parallel rank an "
            f"equal share of the prompts; use a multiple of {nodes}"
        )


def join_overrides(address: str, nodes: int, batch_size: int, n: int, worker_env: dict[str, str]) -> list[str]:
    """verl overrides to join the cluster at ``address`` and train data parallel over ``nodes`` CPU workers."""
    share = batch_size * n // nodes  # samples per rank and step; the micro-batches must divide it
    return [
        f"+ray_kwargs.ray_init.address={address}",
        "ray_kwargs.ray_init.num_cpus=null",  # Ray refuses resource arguments when joining a cluster
        "~ray_kwargs.ray_init.num_gpus",
        f"trainer.nnodes={nodes}",
        "trainer.n_gpus_per_node=1",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={share}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={share}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={share}",
        *(f"+ray_kwargs.ray_init.runtime_env.env_vars.{k}={_quoted(v)}" for k, v in worker_env.items()),
    ]


def _quoted(value: str) -> str:
    """A Hydra string literal (Ray wants every env var as a string; Hydra would read 1 as an int)."""
    return '"' + value.replace('"', '\\"') + '"'  # a backslash stays as it is unless it precedes a quote


def worker_env(env: dict[str, str]) -> dict[str, str]:
    return {k: env[k] for k in WORKER_ENV_KEYS if k in env}


def is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def client_env(address: str) -> dict[str, str]:
    """Environment a Ray client of the cluster at ``address`` needs on top of the user's."""
    return dict(LOOPBACK_ENV) if is_loopback(address) else {}


def ray_tmpdir(out: Path) -> tuple[Path, bool]:
    """(RAY_TMPDIR, whether it is a fresh folder to remove afterwards): ``out/ray``, or a fresh /tmp folder when that
    path is too long for Ray's sockets. Never /tmp/ray itself, where any plain ``ray.init()`` would find the cluster."""
    inside = out / "ray"
    if len(str(inside)) + _SOCKET_SUFFIX <= MAX_SOCKET_PATH:
        return inside, False
    return Path(tempfile.mkdtemp(prefix="gdpo-ray-")), True


class LocalCluster:
    """N Ray nodes on 127.0.0.1 held by a :mod:`.cluster_host` process; ``stop()`` leaves no process and no address
    file. Every process of the cluster (the host, the nodes' daemons, every worker) carries a marker in its
    environment, so teardown finds them all by PID (:class:`~gdpo_verl.quickstart.process_tree.ProcessTree`).
    ``node_env``: extra environment per node (index 0 is the head), e.g. to start a node that differs."""

    def __init__(
        self,
        nodes: int,
        tmpdir: Path,
        log_path: Path,
        cpus_per_node: int = CPUS_PER_NODE,
        gpus_per_node: int = 1,
        node_env: list[dict[str, str]] | None = None,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.nodes, self.tmpdir, self.log_path = nodes, tmpdir, log_path
        self.spec = {"nodes": nodes, "cpus_per_node": cpus_per_node, "gpus_per_node": gpus_per_node}
        self.spec["node_env"] = node_env or []
        self.start_timeout_s = start_timeout_s
        self.marker = new_marker()
        self.host: subprocess.Popen | None = None
        self.tree: ProcessTree | None = None
        self.address = ""
        self.address_file = ""
        self.node_ids: list[str] = []

    def environment(self) -> dict[str, str]:
        """The environment of every client of this cluster (the verl driver included)."""
        return {**LOCAL_CLUSTER_ENV, "RAY_TMPDIR": str(self.tmpdir)}

    def start(self) -> str:
        """Start the nodes; returns the cluster's address. Raises ClusterStartError (after a teardown) if they do
        not come up within ``start_timeout_s``."""
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.environment(), MARKER_VAR: self.marker}
        cmd = [sys.executable, "-m", "gdpo_verl.quickstart.cluster_host", "--spec", json.dumps(self.spec)]
        with open(self.log_path, "ab") as log:
            self.host = subprocess.Popen(
                cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        self.tree = ProcessTree(self.host.pid, self.marker)
        try:
            ready = json.loads(self._read_line(self.start_timeout_s))
        except ValueError:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise ClusterStartError(f"the local Ray cluster did not start; {self.log_path} ends:\n{tail}") from None
        self.address, self.address_file = ready["address"], ready["address_file"]
        self.node_ids = [node["node_id"] for node in ready["nodes"]]
        self.tree.refresh()
        return self.address

    def _read_line(self, timeout_s: float) -> str:
        assert self.host is not None and self.host.stdout is not None
        ready, _, _ = select.select([self.host.stdout], [], [], timeout_s)
        return self.host.stdout.readline().decode(errors="replace") if ready else ""

    def alive_pids(self) -> list[int]:
        """Processes of this cluster still running: the host, the nodes' daemons and every worker they started."""
        if self.tree is None:
            return []
        self.tree.refresh()
        return sorted(p.pid for p in self.tree.alive())

    def stop(self, grace_s: float = 30.0) -> list[int]:
        """Let the host remove the nodes (its stdin closes), then stop whatever of the cluster is left, by PID.
        Returns the pids that could not be stopped (none, unless a process cannot be killed)."""
        if self.host is None or self.tree is None:
            return []
        self.tree.refresh()  # the raylets' workers, before their parents go
        try:
            if self.host.stdin:
                self.host.stdin.close()
            self.host.wait(timeout=grace_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        left = self.tree.stop()
        try:
            self.host.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.address_file:
            Path(self.address_file).unlink(missing_ok=True)
        self.host = None
        return left

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while inside (outside a verl run, which handles them itself), so
    the cluster is torn down as on ^C."""

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def placements(address: str, env: dict[str, str]) -> list[dict]:
    """The cluster's actors (class, node_id, state, pid, death), read from its GCS by a short helper process."""
    cmd = [sys.executable, "-m", "gdpo_verl.quickstart.cluster_host", "--placements", address]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot read the actor table at {address}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def describe_placements(actors: list[dict], node_ids: list[str]) -> list[str]:
    """One line per node: which actor classes ran there and how many (node 0 is the head of a local cluster)."""
    order = {node: i for i, node in enumerate(node_ids)}
    for a in actors:
        order.setdefault(a["node_id"], len(order))
    lines = []
    for node, i in sorted(order.items(), key=lambda item: item[1]):
        counts = Counter(a["class"] for a in actors if a["node_id"] == node)
        what = ", ".join(f"{cls} x{c}" if c > 1 else cls for cls, c in sorted(counts.items())) or "(no actors)"
        lines.append(f"  node {i}{' (head)' if i == 0 and node_ids else ''} {node[:8]}: {what}")
    return lines


def _watch_memory(tree: ProcessTree, done: threading.Event, every_s: float = 1.0) -> None:
    while not done.wait(every_s):
        tree.refresh()
        tree.measure()


def _joined(cfg: command.RunConfig, address: str, nodes: int, env: dict[str, str]) -> command.RunConfig:
    """``cfg`` with the overrides that join the cluster, before the user's own (which still win)."""
    return dataclasses.replace(cfg, extra=(*join_overrides(address, nodes, cfg.batch_size, cfg.n, env), *cfg.extra))


def check_args(args: argparse.Namespace, cfg: command.RunConfig) -> None:
    """Raise ValueError for --nodes / --ray-address settings that cannot run (before anything starts)."""
    if requested(args):
        check_layout(args.nodes, cfg.backend, cfg.batch_size, cfg.n)


PLACEHOLDER_ADDRESS = "LOCAL_CLUSTER_ADDRESS"  # in a dry run's command: the local cluster's address is not known yet


def _command(args: argparse.Namespace, cfg: command.RunConfig, built, address: str, ray_env: dict[str, str]):
    run_env = command.environment(cfg)
    verl = command.build(_joined(cfg, address, args.nodes, worker_env(run_env)), built)
    return dataclasses.replace(verl, env={**verl.env, **ray_env})


def preview(args: argparse.Namespace, cfg: command.RunConfig, built) -> command.VerlCommand:
    """The command as it will join the cluster (checked and shown before the cluster exists): a local cluster's
    address and Ray folder are placeholders until it starts."""
    address = args.ray_address or PLACEHOLDER_ADDRESS
    ray_env = client_env(address) if args.ray_address else {**LOCAL_CLUSTER_ENV, "RAY_TMPDIR": "<out>/ray"}
    return _command(args, cfg, built, address, ray_env)


def run(
    args: argparse.Namespace,
    cfg: command.RunConfig,
    built,
    log_path: Path,
    on_line: Callable[[str], None],
) -> runner.RunResult:
    """The quickstart's training on a local N-node cluster (or the one at ``--ray-address``): writes command.txt
    with the cluster's address, runs verl (:func:`runner.run`), prints where each actor ran (placements.json) and
    tears the local cluster down whatever happens. The result's peak memory covers the cluster's processes too."""
    out, nodes, started = cfg.out, args.nodes, time.monotonic()
    say = getattr(on_line, "print", print)  # above the progress bar, when there is one
    tmpdir, fresh_tmpdir = ray_tmpdir(out)
    cluster = None if args.ray_address else LocalCluster(nodes, tmpdir, out / "ray_cluster.log")
    # Memory of everything the run has at once: this process's tree (verl's driver) and the local cluster's.
    whole = ProcessTree(os.getpid(), cluster.marker if cluster else new_marker())
    done = threading.Event()
    watcher = threading.Thread(target=_watch_memory, args=(whole, done), daemon=True)
    try:
        with signals_as_interrupt():
            if cluster is not None:
                say(f"  starting a local {nodes}-node Ray cluster on 127.0.0.1 (RAY_TMPDIR={tmpdir})")
                address, ray_env = cluster.start(), cluster.environment()
            else:
                address, ray_env = args.ray_address, client_env(args.ray_address)
            watcher.start()
            verl = _command(args, cfg, built, address, ray_env)
            (out / "command.txt").write_text(verl.shell_text())
            say(f"  verl joins the cluster at {address}, data parallel {nodes}")
            result = runner.run(verl, log_path, on_line, args.timeout)
            if result.stopped is None:
                _report_placements(address, ray_env, cluster, out, say)
    except ClusterStartError as exc:
        print(f"gdpo-verl quickstart: {exc}", file=sys.stderr)
        return runner.RunResult(1, time.monotonic() - started, out / "ray_cluster.log", tail=str(exc).splitlines())
    except KeyboardInterrupt as exc:  # a signal while the cluster started: verl was not running
        name = str(exc) if str(exc) in signal.Signals.__members__ else "SIGINT"
        return runner.RunResult(128 + signal.Signals[name].value, time.monotonic() - started, log_path, stopped=name)
    finally:
        done.set()
        if cluster is not None:
            left = cluster.stop()
            if left:
                print(f"gdpo-verl quickstart: could not stop cluster processes {left}", file=sys.stderr)
            if fresh_tmpdir:
                shutil.rmtree(tmpdir, ignore_errors=True)
    if whole.peak_mem_mb is not None:
        result.peak_mem_mb = max(result.peak_mem_mb or 0.0, whole.peak_mem_mb)
    return result


def _report_placements(
    address: str, ray_env: dict[str, str], cluster: LocalCluster | None, out: Path, say: Callable[[str], None]
) -> None:
    try:
        actors = placements(address, ray_env)
    except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
        print(f"  could not read where the actors ran: {exc}", file=sys.stderr)
        return
    (out / "placements.json").write_text(json.dumps(actors, indent=1) + "\n")
    say("where verl's actors ran:")
    for line in describe_placements(actors, cluster.node_ids if cluster else []):
        say(line)
