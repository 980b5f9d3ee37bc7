"""`gdpo-verl doctor`: does verl load this plugin, and which `gdpo` will a run use? Exit 1 if not ours."""

from __future__ import annotations

import argparse
import os
from importlib.metadata import PackageNotFoundError, entry_points, version


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print problems only")


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    lines: list[str] = []
    try:
        lines.append(f"verl {version('verl')}")
    except PackageNotFoundError:
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
