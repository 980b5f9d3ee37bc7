"""`gdpo-verl doctor`: does verl load this plugin, and which `gdpo` will a run use? With `--backend`, can this
machine import everything that backend imports, at the versions verl pins? Exit 1 on any problem."""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version

from gdpo_verl import cluster_doctor
from gdpo_verl.check.backend import BACKENDS, VANILLA_MBRIDGE, Module, normalize, verl_pins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print problems only")
    parser.add_argument(
        "--backend",
        action="append",
        choices=sorted(BACKENDS),
        default=[],
        help="import every module this backend imports and compare versions with verl's pins (repeatable)",
    )
    cluster_doctor.add_arguments(parser)  # --ray-address: every node of a cluster


def _installed(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _pin_ok(installed: str, pin: str) -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    return Version(installed) in SpecifierSet(pin)


def backend_report(backends: Sequence[str]) -> tuple[list[str], list[str]]:
    """(lines, problems): one line per module verl imports for these backends, importing each for real."""
    pins, lines, problems = verl_pins(), [], []
    optional = {VANILLA_MBRIDGE.name} if "megatron" in backends else set()
    seen: set[str] = set()
    modules = [("all", Module("torch", "torch", "everything"))] + [(b, m) for b in backends for m in BACKENDS[b]]
    if "megatron" in backends:
        modules.append(("megatron", VANILLA_MBRIDGE))
    for backend, module in modules:
        if module.name in seen:
            continue
        seen.add(module.name)
        pin = pins.get(normalize(module.dist))
        have = _installed(module.dist)
        try:
            importlib.import_module(module.name)
            status = "ok"
        except Exception as e:  # ImportError, or a CUDA/ABI error raised while importing
            status = f"IMPORT FAILS ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            if module.name in optional:
                status += " [needed only with vanilla_mbridge=True]"
            else:
                problems.append(f"{backend}: `import {module.name}` fails; verl needs it for {module.why}")
        where = f"{module.dist} {have or 'not installed'}" + (f" (verl pins {pin})" if pin else "")
        if have and pin and not _pin_ok(have, pin):
            where += " MISMATCH"
        lines.append(f"{backend:<8} {module.name:<18} {where}: {status}")
    return lines, problems


def run(args: argparse.Namespace) -> int:
    if args.ray_address or args.overrides or args.code_rewards:  # every node of a cluster: cluster_doctor.py
        return cluster_doctor.run(args)
    problems: list[str] = []
    lines: list[str] = []
    if args.backend:
        backend_lines, problems = backend_report(args.backend)
        lines += backend_lines
    try:
        lines.append(f"verl {version('verl')}")
    except PackageNotFoundError:
        print("\n".join([*lines, *(f"PROBLEM: {p}" for p in problems)]))
        print("verl is not installed: pip install verl (see README)")
        return 1
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
    if not args.quiet:
        print("\n".join(lines))
    for p in problems:
        print(f"PROBLEM: {p}")
    if not problems and not args.quiet:
        print("OK: verl runs gdpo_verl for adv_estimator=gdpo")
    return 1 if problems else 0


def _hook_problems() -> list[str]:
    """Import every verl module a hook patches, so each hook checks verl's shapes; what did not apply, by name."""
    import importlib

    from gdpo_verl_plugins import verl_shapes

    for hook in verl_shapes.HOOKS:
        try:
            importlib.import_module(hook.module)
        except ImportError:
            continue  # an older verl without that trainer: nothing to hook there
    return list(verl_shapes.problems().values())
