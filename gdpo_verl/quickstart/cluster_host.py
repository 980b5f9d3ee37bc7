"""The process that holds a local N-node Ray cluster on 127.0.0.1 (``python -m gdpo_verl.quickstart.cluster_host``).

Started by :class:`gdpo_verl.quickstart.cluster.LocalCluster` with the client environment already set (Ray reads
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` at import). It starts the nodes with ``ray.cluster_utils.Cluster``, prints one
JSON line ``{"address", "nodes": [{"node_id", "pids"}], "address_file"}`` and then serves until its stdin closes
(its parent finished or died) or it gets SIGTERM/SIGINT/SIGHUP, when it removes every node.

``python -m gdpo_verl.quickstart.cluster_host --placements ADDRESS`` prints the cluster's actor table instead (one
JSON line: a list of ``{"class", "node_id", "state", "pid", "death"}``), read from the GCS without joining as a driver.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def _pids(node) -> list[int]:
    return [info.process.pid for infos in node.all_processes.values() for info in infos if info.process is not None]


def serve(spec: dict) -> int:
    import ray
    from ray.cluster_utils import Cluster

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    common = {"node_ip_address": "127.0.0.1", "num_cpus": spec["cpus_per_node"], "num_gpus": spec["gpus_per_node"]}
    node_env: list[dict] = spec.get("node_env") or []
    cluster = Cluster(shutdown_at_exit=True)
    try:
        nodes = []
        for i in range(spec["nodes"]):
            extra = {"include_dashboard": False} if i == 0 else {}
            env = node_env[i] if i < len(node_env) and node_env[i] else None
            nodes.append(cluster.add_node(**common, **extra, env_vars=env))
        cluster.wait_for_nodes(timeout=60)
        address_file = ray._common.utils.get_ray_address_file(None)
        ready = {
            "address": cluster.address,
            "address_file": address_file,
            "nodes": [{"node_id": n.node_id, "pids": _pids(n)} for n in nodes],
        }
        print(json.dumps(ready), flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    finally:
        cluster.shutdown()  # kills every node's processes and removes the address file
    return 0


def _death(cause) -> str:
    """Why a dead actor ended, as ``<context>[:<reason>]: <first line of the message>`` ("" while alive)."""
    which = cause.WhichOneof("context")
    if which is None:
        return ""
    ctx = getattr(cause, which)
    reason = ""
    if which == "actor_died_error_context":
        reason = ":" + ctx.DESCRIPTOR.fields_by_name["reason"].enum_type.values_by_number[ctx.reason].name
    message = str(getattr(ctx, "error_message", "")).strip().splitlines()
    return f"{which}{reason}: {message[0][:200] if message else ''}"


def placements(address: str) -> list[dict]:
    """Every actor the cluster has seen (alive or dead): its class, node, state, pid and, when dead, why."""
    from ray._private.state import GlobalState
    from ray._raylet import GcsClientOptions

    state = GlobalState()
    state._initialize_global_state(
        GcsClientOptions.create(address, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False)
    )
    return [
        {
            "class": a["ActorClassName"].rsplit(".", 1)[-1],  # create_colocated_worker_cls.<locals>.WorkerDict
            "node_id": a["Address"]["NodeID"],
            "state": a["State"],
            "pid": a["Pid"],
            "death": _death(a["DeathCause"]),
        }
        for a in state.actor_table(None).values()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdpo_verl.quickstart.cluster_host")
    parser.add_argument("--spec", help="JSON: nodes, cpus_per_node, gpus_per_node, node_env (one dict per node)")
    parser.add_argument("--placements", metavar="ADDRESS", help="print the actor table of the cluster at ADDRESS")
    args = parser.parse_args(argv)
    if args.placements:
        print(json.dumps(placements(args.placements)), flush=True)
        return 0
    return serve(json.loads(args.spec))


if __name__ == "__main__":
    sys.exit(main())
