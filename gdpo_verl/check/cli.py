"""`gdpo-verl check`: compose a verl command line (or an example script) with verl's Hydra config on CPU and report
what would fail or be silently ignored on the GPU cluster.

    gdpo-verl check -- algorithm.adv_estimator=gdpo '+algorithm.gdpo_reward_keys=[a,b]' ...
    gdpo-verl check --script examples/math_r1_distill_7b.sh [--model-config config.json] [-- --grpo --fsdp2]

With --script, the arguments after ``--`` go to the script (its flags such as --grpo, or extra overrides); the script
is run with GDPO_VERL_CHECK_DUMP set, so it writes its override list instead of launching. Exit status 1 when there
is an error, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from gdpo_verl.check.backend import check_backend
from gdpo_verl.check.compose import Composer, dump_script
from gdpo_verl.check.limits import check_limits
from gdpo_verl.check.memory import DEFAULT_GPU_GIB, check_memory
from gdpo_verl.check.parallel import check_legacy, check_parallel, check_trainer, known_model_shape, load_model_shape
from gdpo_verl.check.report import Finding, err, errors, info, render, warn
from gdpo_verl.check.rewards import check_rewards
from gdpo_verl.check.run_plan import check_run_plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--script", help="an example script that launches through examples/common.sh")
    parser.add_argument("--model-config", help="the model's config.json (default: <model.path>/config.json if local)")
    parser.add_argument("--config-dir", help="verl's trainer/config folder (default: the installed verl's)")
    parser.add_argument(
        "--verl-validate",
        action="store_true",
        help="also run verl's own validate_config and dataclass conversion (imports verl: a few seconds)",
    )
    parser.add_argument(
        "--gpu-memory-gib",
        type=float,
        default=DEFAULT_GPU_GIB,
        help=f"memory of one GPU for the per-GPU estimate (default {DEFAULT_GPU_GIB:g})",
    )
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="with --script: after the checks pass, run the recipe's command on this CPU for a step, a checkpoint "
        "and a resumed step (a tiny model of its architecture, hf_cpu rollout; minutes)",
    )
    parser.add_argument("--rehearse-dir", help="where the rehearsal writes (default: a new temporary folder)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (or, with --script, the script's arguments)")


def check_args(
    args: Sequence[str],
    composer: Composer,
    model_config: str | None = None,
    verl_validate: bool = False,
    gpu_memory_gib: float = DEFAULT_GPU_GIB,
) -> list[Finding]:
    """All findings for one verl argument list (overrides plus --config-name)."""
    composed = composer.compose(args)
    findings = list(composed.findings)
    cfg = composed.cfg
    if cfg is None:
        return findings
    path, shape = model_config or _local_model_dir(cfg), None
    try:
        shape = load_model_shape(path)
        if model_config and shape is None:
            findings.append(err("model", f"--model-config {model_config}: no config.json there"))
        elif shape is None:
            shape = known_model_shape(cfg.actor_rollout_ref.model.get("path"))
    except (OSError, ValueError, KeyError) as e:
        findings.append(err("model", f"cannot read the model config {path}: {e}"))
    for rule in (check_trainer, check_rewards, check_legacy, check_limits, check_run_plan):
        findings += _safe(rule, cfg)
    findings += _safe(check_parallel, cfg, shape)
    findings += _safe(check_memory, cfg, shape, gpu_memory_gib)
    findings += _safe(check_backend, cfg, composed.overrides)
    if verl_validate:
        findings += verl_own_validation(cfg)
    return findings


_COMPOSERS: dict[str | None, Composer] = {}


def validate_command(
    args: Sequence[str],
    model_config: str | None = None,
    gpu_memory_gib: float = DEFAULT_GPU_GIB,
    config_dir: str | None = None,
) -> list[Finding]:
    """The stable entry point for "validate a composed verl command": every finding for a `main_ppo` argument list
    (Hydra overrides, optionally --config-name), without starting verl. Errors are `report.errors(findings)`; render
    them with `report.render(findings, title)`. Reuses one Hydra composer per config folder (seconds the first time)."""
    composer = _COMPOSERS.get(config_dir) or _COMPOSERS.setdefault(config_dir, Composer(config_dir))
    return check_args(args, composer, model_config, gpu_memory_gib=gpu_memory_gib)


def _safe(rule: Any, *args: Any) -> list[Finding]:
    try:
        return rule(*args)
    except Exception as e:  # a rule that trips over an odd config must not hide the others
        return [err(rule.__name__.removeprefix("check_"), f"{type(e).__name__}: {e}")]


def _local_model_dir(cfg: Any) -> str | None:
    model = cfg.actor_rollout_ref.model
    for key in ("hf_config_path", "path"):
        value = model.get(key)
        if value and os.path.isdir(os.path.expanduser(str(value))):
            return str(value)
    return None


def verl_own_validation(cfg: Any) -> list[Finding]:
    """verl's validate_config (what main_ppo runs first) and the dataclass conversion of the main sections."""
    from omegaconf import OmegaConf

    try:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
    except Exception as e:
        return [warn("verl", f"cannot import verl's validation ({type(e).__name__}: {e})")]
    out: list[Finding] = []
    try:
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as e:
        out.append(err("verl", f"verl's validate_config: {type(e).__name__}: {e}"))
    algorithm = OmegaConf.to_container(cfg.algorithm, resolve=True)
    algorithm.pop("gdpo", None)  # this plugin's options; verl's AlgoConfig dataclass does not know them
    for name, node in (("algorithm", OmegaConf.create(algorithm)), ("rollout", cfg.actor_rollout_ref.rollout)):
        try:
            omega_conf_to_dataclass(node)
        except Exception as e:
            out.append(err("verl", f"{name} section does not convert to verl's dataclass: {e}"))
    if not out:
        out.append(info("verl", "verl's validate_config and dataclass conversion passed"))
    return out


def _usage_problem(script: str | None, extra: Sequence[str]) -> str | None:
    """A script given where overrides go, or a --script that is not there."""
    if script and not os.path.isfile(script):
        return f"--script {script}: no such file"
    if not script:
        for arg in extra:
            if "=" not in arg and (arg.endswith(".sh") or os.path.isfile(arg)):
                return f"{arg!r} is not a Hydra override; to check a script, run `gdpo-verl check --script {arg}`"
    return None


def run(args: argparse.Namespace) -> int:
    extra = list(args.overrides)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    problem = _usage_problem(args.script, extra)
    if problem:
        print(f"gdpo-verl check: {problem}")
        return 2
    try:
        composer = Composer(args.config_dir)
        title = "command line"
        if args.script:
            title = args.script + (" " + " ".join(extra) if extra else "")
            verl_args = dump_script(args.script, extra)
        else:
            verl_args = extra
    except (RuntimeError, OSError) as e:
        print(f"gdpo-verl check: {e}")
        return 2
    findings = check_args(verl_args, composer, args.model_config, args.verl_validate, args.gpu_memory_gib)
    print(render(findings, title, quiet=args.quiet), flush=True)
    if errors(findings):
        return 1
    if args.rehearse:
        import tempfile
        from pathlib import Path

        from gdpo_verl.check.rehearse import rehearse

        if not args.script:
            print("gdpo-verl check: --rehearse needs --script examples/<recipe>.sh")
            return 2
        out = Path(args.rehearse_dir or tempfile.mkdtemp(prefix="gdpo-rehearse-"))
        return rehearse(verl_args, out.resolve(), composer=composer)
    return 0
