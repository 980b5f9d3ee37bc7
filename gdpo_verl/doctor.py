"""`gdpo-verl doctor`: does verl load this plugin, and which `gdpo` will a run use? With `--backend`, can this
machine import what that backend needs, and what does each missing optional package cost? Exit 1 on any problem.

The verdict comes first; library warnings printed while importing are kept out of the report (`--verbose` shows
them at the end). `check_node` is the per-machine part (plain data in, plain data out), so it can run on every node
of a cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version

from gdpo_verl import cluster_doctor
from gdpo_verl.check.backend import BACKENDS, MBRIDGE, MEGATRON_BRIDGE, NVIDIA_APEX, Module, normalize, requires_pins
from gdpo_verl.node_probe import installed_version as _installed

# The CPU install (scripts/install_cpu.sh --megatron) pins these outside the package metadata: the CPU adjustments in
# plugins/cpu/megatron/ are written against these releases' internals.
CPU_MEGATRON_PINS = {"megatron-core": "==0.16.1", "mbridge": "==0.15.1"}
TORCH = Module("torch", "torch", "everything")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print the verdict and problems only")
    parser.add_argument("--verbose", action="store_true", help="also print what libraries wrote while importing")
    parser.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKENDS),
        default=[],
        help="import what this backend needs, say what each missing optional package costs (repeatable)",
    )
    cluster_doctor.add_arguments(parser)  # --ray-address: every node of a cluster


@dataclass
class NodeReport:
    """What one machine can run: `problems` make the run fail, `notes` cost speed or memory, `lines` are details."""

    install: str  # "cpu" or "gpu"
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    captured: str = ""  # what libraries printed while being imported


@contextlib.contextmanager
def quiet_imports() -> Iterator[list[str]]:
    """Send what libraries print (Python warnings, logging, raw writes to fd 1/2) to a buffer instead of the report."""
    sink: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    previous = logging.root.manager.disable
    with tempfile.TemporaryFile(mode="w+b") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            logging.disable(previous)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


def _pin_ok(installed: str, pin: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    return Version(installed).public in SpecifierSet(pin) or Version(installed) in SpecifierSet(pin)


def _import(name: str) -> str | None:
    """None when `import name` works, else the reason (an ImportError, or a CUDA/ABI error raised while importing)."""
    try:
        importlib.import_module(name)
        return None
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else ""
        return f"{type(e).__name__}: {first}"


def cpu_install() -> bool:
    """A CPU build of torch (scripts/install_cpu.sh) rather than a CUDA one."""
    import torch

    return torch.version.cuda is None and not torch.cuda.is_available()


def check_node(backends: Sequence[str]) -> NodeReport:
    """Import what `backends` need on this machine and judge it against the install kind (CPU or GPU)."""
    with quiet_imports() as captured:
        report = _check_node(backends)
    report.captured = "".join(captured)
    return report


def _check_node(backends: Sequence[str]) -> NodeReport:
    reason = _import("torch")
    if reason:
        return NodeReport("?", problems=[f"`import torch` fails ({reason}); install torch first (see README)"])
    report = NodeReport("cpu" if cpu_install() else "gpu")
    cpu = report.install == "cpu"
    pins = {
        **requires_pins("verl"),
        **requires_pins("gdpo-verl", extra=report.install),
        **(CPU_MEGATRON_PINS if cpu else {}),
    }
    import torch

    build = f"torch {torch.__version__}" + (", no CUDA" if cpu else f", CUDA {torch.version.cuda}")
    report.lines.append(f"install: {report.install.upper()} ({build})")
    seen: set[str] = set()
    for backend, module in [("all", TORCH), *((b, m) for b in backends for m in BACKENDS[b])]:
        if (backend, module.name) in seen:
            continue
        seen.add((backend, module.name))
        _judge(report, backend, module, pins.get(normalize(module.dist)))
    if "megatron" in backends:
        _megatron_summary(report)
    return report


def _judge(report: NodeReport, backend: str, module: Module, pin: str | None) -> None:
    cpu = report.install == "cpu"
    have = _installed(module.dist)
    where = f"{module.dist} {have or 'not installed'}"
    if cpu and module.on_cpu:  # not part of the CPU install: say so, judge nothing
        state = "present" if have else "not expected"
        report.lines.append(f"{backend:<8} {module.name:<18} {where}: {state} on the CPU install ({module.on_cpu})")
        return
    failure = _import(module.name)
    if failure is None and have and pin and not _pin_ok(have, pin):
        expected = "the CPU install's" if cpu and normalize(module.dist) in CPU_MEGATRON_PINS else "the expected"
        report.notes.append(f"{module.dist} {have} differs from {expected} {pin}: {module.why} may not work as tested")
    if failure is None:
        report.lines.append(f"{backend:<8} {module.name:<18} {where}{f' (expected {pin})' if pin else ''}: ok")
        return
    if module is NVIDIA_APEX and have:
        failure = "the installed `apex` is not NVIDIA apex (the index's `apex` is an unrelated web toolkit)"
    report.lines.append(f"{backend:<8} {module.name:<18} {where}: IMPORT FAILS ({failure})")
    if module.required:
        report.problems.append(f"{backend}: `import {module.name}` fails ({failure}); verl needs it for {module.why}")
    else:
        report.notes.append(f"{backend}: no {module.dist} ({failure.split(':')[0]}): {module.without}")


def _megatron_summary(report: NodeReport) -> None:
    bridge = "mbridge (vanilla_mbridge=True)"
    bridge_fails = any(MEGATRON_BRIDGE.name in line and "FAILS" in line for line in report.lines)
    if _installed(MEGATRON_BRIDGE.dist) and not bridge_fails:
        bridge += "; Megatron-Bridge also importable (MEGATRON_BRIDGE=1)"
    if report.install == "cpu":
        report.lines.append(
            f"megatron: the CPU path runs {bridge} with megatron-core's local layers (transformer_impl=local, "
            "attention_backend=local); Transformer Engine, flash-attn, apex and Megatron-Bridge are GPU-only"
        )
    elif not any(f"`import {MBRIDGE.name}`" in p for p in report.problems):
        report.lines.append(f"megatron: the recipes use {bridge}")


def plugin_report() -> tuple[list[str], list[str]]:
    """(lines, problems): is the plugin installed, enabled and registered in the installed verl?"""
    lines: list[str] = []
    problems: list[str] = []
    try:
        lines.append(f"verl {version('verl')}")
    except PackageNotFoundError:
        return lines, ["verl is not installed: pip install verl (see README)"]
    eps = [ep for ep in entry_points(group="verl.plugins") if ep.name == "gdpo_verl"]
    lines.append(f"entry point verl.plugins:gdpo_verl -> {eps[0].value if eps else 'MISSING'}")
    if not eps:
        problems.append("the gdpo_verl entry point is not installed (reinstall this package)")
    policy = os.getenv("VERL_USE_EXTERNAL_PLUGINS", "auto").strip().lower()
    if policy == "none" or (policy != "auto" and "gdpo_verl" not in {p.strip() for p in policy.split(",")}):
        problems.append(f"VERL_USE_EXTERNAL_PLUGINS={policy!r} keeps verl from loading gdpo_verl")

    import verl  # noqa: F401  (loads the plugins)
    from verl.trainer.ppo import core_algos

    problems += _hook_problems()
    fn = getattr(core_algos, "ADV_ESTIMATOR_REGISTRY", {}).get("gdpo")
    where = f"{fn.__module__}.{fn.__name__}" if fn else "none"
    lines.append(f"algorithm.adv_estimator=gdpo -> {where}")
    if not where.startswith("gdpo_verl_plugins."):
        problems.append("adv_estimator=gdpo would run verl's built-in, not gdpo_verl")
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    try:
        manager = get_reward_manager_cls("gdpo_multi")
        lines.append(f"reward.reward_manager.name=gdpo_multi -> {manager.__module__}.{manager.__name__}")
    except ValueError:
        lines.append("reward.reward_manager.name=gdpo_multi -> MISSING")
        problems.append("the gdpo_multi reward manager is not registered")
    return lines, problems


def render(what: str, problems: Sequence[str], notes: Sequence[str], lines: Sequence[str], quiet: bool = False) -> str:
    """The verdict line first, then PROBLEM and NOTE lines, then (unless quiet) the details, indented."""
    if problems:
        out = [f"gdpo-verl doctor: FAIL ({what}): {len(problems)} problem(s), {len(notes)} note(s)"]
    else:
        tail = f", {len(notes)} note(s) on what a missing optional package costs" if notes else ""
        out = [f"gdpo-verl doctor: OK ({what}): verl runs gdpo_verl for adv_estimator=gdpo{tail}"]
    out += [f"PROBLEM: {p}" for p in problems] + [f"NOTE: {n}" for n in notes]
    if not quiet:
        out += [f"  {line}" for line in lines]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    if args.ray_address or args.overrides or args.code_rewards:  # every node of a cluster: cluster_doctor.py
        return cluster_doctor.run(args)
    node = check_node(args.backend) if args.backend else None
    with quiet_imports() as captured:
        lines, problems = plugin_report()
    if node is not None:
        problems = [*node.problems, *problems]
        lines = [*node.lines, *lines]
    what = f"{', '.join(args.backend)} on this {node.install.upper()} install" if node else "plugin"
    print(render(what, problems, node.notes if node else [], lines, args.quiet))
    captured_text = "".join(captured) + (node.captured if node else "")
    if getattr(args, "verbose", False) and captured_text.strip():
        print("--- what libraries printed while importing ---")
        print(captured_text.rstrip())
    return 1 if problems else 0


def _hook_problems() -> list[str]:
    """Import every verl module a hook patches, so each hook checks verl's shapes; what did not apply, by name."""
    from gdpo_verl_plugins import verl_shapes

    for hook in verl_shapes.HOOKS:
        try:
            importlib.import_module(hook.module)
        except ImportError:
            continue  # an older verl without that trainer: nothing to hook there
    return list(verl_shapes.problems().values())
