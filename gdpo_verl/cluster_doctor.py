"""``gdpo-verl doctor --ray-address ADDR``: the doctor's checks on every node of a running Ray cluster.

One task per alive node, pinned there (``NodeAffinitySchedulingStrategy``, not soft), runs
:func:`gdpo_verl.node_probe.probe` with the node's own Python: gdpo-verl's version (compared with this driver's), the
doctor (the plugin loads; ``adv_estimator=gdpo`` and ``gdpo_multi`` resolve to gdpo_verl; with ``--backend``, the
backend imports) and, when the run scores code, the code sandbox's isolation (namespaces, cgroup, seccomp). One line
per node; exit 1 when any node has a problem or differs from the others.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence

from gdpo_verl import node_probe

PLUGIN_PREFIX = "gdpo_verl_plugins."
GDPO_LINE = "algorithm.adv_estimator=gdpo"
MANAGER_LINE = "reward.reward_manager.name=gdpo_multi"
PROBLEM = "PROBLEM: "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="run these checks on every node of the Ray cluster at ADDR, one line per node (docs/multinode.md)",
    )
    parser.add_argument(
        "--code-rewards",
        action="store_true",
        help="with --ray-address: the run scores code, so also check the code sandbox's isolation on every node "
        "(implied by overrides that configure code.pass_rate or code.bug_free)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="with --ray-address: seconds each node may take (default 300)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="with --ray-address: the run's verl overrides (after `--`); a reward.gdpo_multi section with code "
        "rewards turns on the sandbox check, and its allow_weak_sandbox is honoured",
    )


def code_sandbox_need(overrides: Sequence[str]) -> tuple[bool, bool]:
    """(the run scores code in the local sandbox, weak isolation allowed), from its composed verl config. Raises
    ValueError when the overrides do not compose or the reward section is invalid."""
    from gdpo_verl.check.compose import Composer
    from gdpo_verl.rewards.code_rewards import CODE_FNS
    from gdpo_verl.rewards.manager import parse_config

    composed = Composer().compose(list(overrides))
    if composed.cfg is None:
        raise ValueError("; ".join(f.message for f in composed.findings) or "the overrides do not compose")
    section = composed.cfg.reward.get("gdpo_multi")
    if not section:
        return False, False
    cfg = parse_config(section)
    local_code = [r for r in cfg.rewards if r.fn in CODE_FNS and dict(r.kwargs).get("backend", "local") == "local"]
    return bool(local_code), cfg.allow_weak_sandbox


def doctor_findings(stdout: str) -> tuple[dict[str, str], list[str]]:
    """The doctor's ``what -> resolves to`` lines and its ``PROBLEM:`` lines."""
    resolved, problems = {}, []
    for line in stdout.splitlines():
        if line.startswith(PROBLEM):
            problems.append(line[len(PROBLEM) :].strip())
        elif " -> " in line:
            what, _, where = line.partition(" -> ")
            resolved[what.strip()] = where.strip()
    return resolved, problems


def sandbox_text(info: dict) -> str:
    cgroup = f"cgroup v{info['cgroup']}" if info.get("cgroup") else "no cgroup"
    return f"{info.get('isolation')}, {cgroup}, {'seccomp' if info.get('seccomp') else 'no seccomp'}"


def node_problems(
    facts: dict,
    driver_versions: dict[str, str | None],
    sandbox_needed: bool,
    allow_weak: bool,
    usual_sandbox: str | None,
) -> list[str]:
    """What is wrong on one node, or differs from the driver (versions) or from most nodes (sandbox)."""
    if "error" in facts:
        return [f"the check could not run there: {facts['error']}"]
    problems = []
    versions = facts.get("versions", {})
    plugin = versions.get(node_probe.PLUGIN_DIST)
    if plugin is None:
        wanted = driver_versions.get(node_probe.PLUGIN_DIST)
        return [f"gdpo-verl is not installed for {facts.get('python')} there (install gdpo-verl {wanted})"]
    for dist in (node_probe.PLUGIN_DIST, "verl"):
        if versions.get(dist) != driver_versions.get(dist):
            problems.append(f"{dist} {versions.get(dist)} here, {driver_versions.get(dist)} on the driver")
    doctor = facts.get("doctor") or {}
    resolved, doctor_problems = doctor_findings(doctor.get("stdout", ""))
    problems += doctor_problems
    if doctor.get("rc") != 0 and not doctor_problems:
        last = (doctor.get("stderr") or "").strip().splitlines()
        problems.append(f"gdpo-verl doctor failed there ({doctor.get('rc')}): {last[-1][:300] if last else ''}")
    for what in (GDPO_LINE, MANAGER_LINE):
        where = resolved.get(what)
        if where is not None and not where.startswith(PLUGIN_PREFIX) and not doctor_problems:
            problems.append(f"{what} resolves to {where}, not gdpo_verl")
    if sandbox_needed:
        info = facts.get("sandbox")
        if info is None:
            problems.append(f"the code sandbox cannot run there: {facts.get('sandbox_error', 'no answer')}")
        else:
            if info.get("isolation") != "namespaces" and not allow_weak:
                problems.append(
                    "the code sandbox has only its weak fallback (no namespaces: needs root and a working `unshare`"
                    " there); code rewards stop the run on this node unless reward.gdpo_multi.allow_weak_sandbox=true"
                )
            if usual_sandbox is not None and sandbox_text(info) != usual_sandbox:
                problems.append(f"code sandbox {sandbox_text(info)}, other nodes: {usual_sandbox}")
    return problems


def _resolved_text(facts: dict) -> str:
    resolved, _ = doctor_findings((facts.get("doctor") or {}).get("stdout", ""))
    parts = []
    for short, what in (("gdpo", GDPO_LINE), ("gdpo_multi", MANAGER_LINE)):
        where = resolved.get(what, "?")
        parts.append(f"{short} -> {'gdpo_verl' if where.startswith(PLUGIN_PREFIX) else where}")
    return ", ".join(parts)


def node_line(index: int, node: dict, facts: dict, problems: list[str], head: bool) -> str:
    """``node I [(head)] ID8 IP host: what it has: OK`` or ``...: DIFFERS: problem; problem``."""
    versions = facts.get("versions", {})
    have = [f"gdpo-verl {versions.get(node_probe.PLUGIN_DIST)}", f"verl {versions.get('verl')}"]
    if "doctor" in facts:
        have.append(_resolved_text(facts))
    if "sandbox" in facts:
        have.append(f"sandbox {sandbox_text(facts['sandbox'])}")
    where = f"node {index}{' (head)' if head else ''} {node['NodeID'][:8]} {node.get('NodeManagerAddress', '?')}"
    where += f" {facts.get('host', '')}".rstrip()
    verdict = "DIFFERS: " + "; ".join(problems) if problems else "OK"
    return f"{where}: {', '.join(have)}: {verdict}"


def _is_head(node: dict) -> bool:
    return "node:__internal_head__" in node.get("Resources", {})


def _probe_every_node(address: str, backends: list[str], sandbox: bool, timeout_s: float) -> list[tuple[dict, dict]]:
    """(node, facts) for every alive node, head first; facts ``{"error": ...}`` where the task failed."""
    from gdpo_verl.quickstart.cluster import client_env

    os.environ.update(client_env(address))  # read by Ray at import
    import ray
    from ray import cloudpickle
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cloudpickle.register_pickle_by_value(node_probe)  # the nodes need not have this module (or gdpo-verl at all)
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except Exception as e:  # noqa: BLE001 - ConnectionError, or Ray's own errors for a wrong address
        raise ConnectionError(f"cannot join the Ray cluster at {address}: {type(e).__name__}: {e}") from None
    try:
        nodes = sorted(
            (n for n in ray.nodes() if n.get("Alive")),
            key=lambda n: (not _is_head(n), n["NodeID"]),
        )
        task = ray.remote(num_cpus=0, max_retries=0)(node_probe.probe)
        refs = [
            task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                backends, sandbox, timeout_s
            )
            for n in nodes
        ]
        results = []
        for node, ref in zip(nodes, refs, strict=True):
            try:
                facts = ray.get(ref, timeout=2 * timeout_s + 60)
            except Exception as e:  # noqa: BLE001 - a task error, a lost node or a timeout is that node's finding
                facts = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:300] if str(e) else ''}"}
            results.append((node, facts))
        return results
    finally:
        ray.shutdown()


def run(args: argparse.Namespace) -> int:
    if not args.ray_address:
        print("gdpo-verl doctor: --code-rewards and overrides apply with --ray-address ADDR only", file=sys.stderr)
        return 2
    sandbox, allow_weak = bool(args.code_rewards), False
    if args.overrides:
        try:
            from_config, allow_weak = code_sandbox_need(args.overrides)
        except ValueError as e:
            print(f"gdpo-verl doctor: the overrides given do not make a valid config: {e}", file=sys.stderr)
            return 2
        sandbox = sandbox or from_config
    driver = {dist: node_probe.installed_version(dist) for dist in node_probe.DISTS}
    if not args.quiet:
        print(f"driver: gdpo-verl {driver[node_probe.PLUGIN_DIST]}, verl {driver['verl']}, ray {driver['ray']}")
    try:
        results = _probe_every_node(args.ray_address, list(args.backend), sandbox, args.timeout)
    except ConnectionError as e:
        print(f"gdpo-verl doctor: {e} (run it on a node of the cluster, or use a ray:// address)", file=sys.stderr)
        return 2
    if not results:
        print(f"PROBLEM: the Ray cluster at {args.ray_address} has no alive node")
        return 1
    seen = Counter(sandbox_text(f["sandbox"]) for _, f in results if "sandbox" in f)
    usual = seen.most_common(1)[0][0] if len(seen) > 1 else None
    bad = 0
    for i, (node, facts) in enumerate(results):
        problems = node_problems(facts, driver, sandbox, allow_weak, usual)
        bad += bool(problems)
        if problems or not args.quiet:
            print(node_line(i, node, facts, problems, _is_head(node)), flush=True)
    checked = (
        "plugin, estimator, reward manager"
        + (", sandbox" if sandbox else "")
        + (f", backend {'/'.join(args.backend)}" if args.backend else "")
    )
    if bad:
        print(f"PROBLEM: {bad} of {len(results)} nodes differ ({checked})")
        return 1
    if not args.quiet:
        print(f"OK: all {len(results)} nodes agree ({checked})")
    return 0
