"""``gdpo-verl quickstart``: train a tiny model with the real verl ``main_ppo`` on CPU, two rewards, GDPO or GRPO."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gdpo_verl.quickstart import assets, cluster, command, console, display, output_folder, report, runner, tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40: 2-3 min on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("gdpo_quickstart"),
        help="output folder, new or empty (default ./gdpo_quickstart; see --overwrite and --resume)",
    )
    parser.add_argument(
        "--estimator",
        choices=("gdpo", "grpo"),
        default="gdpo",
        help="gdpo (per-reward normalization) or grpo (on the weighted-sum score)",
    )
    parser.add_argument(
        "--task",
        choices=tuple(tasks.TASKS),
        default=tasks.DEFAULT,
        help="find_digit (a fractional and a binary reward) or two_binary (two binary rewards; docs/cpu-study.md)",
    )
    parser.add_argument("--legacy", action="store_true", help="use verl's legacy trainer (trainer.use_v1=False)")
    parser.add_argument(
        "--backend",
        choices=command.BACKENDS,
        default="fsdp2",
        help="actor (and reference) engine: fsdp2 (default, 1 CPU worker) or megatron (TP x PP CPU workers; "
        "needs `bash scripts/install_cpu.sh --megatron`)",
    )
    parser.add_argument("--tp", type=int, default=1, help="Megatron tensor-parallel size (--backend megatron)")
    parser.add_argument("--pp", type=int, default=1, help="Megatron pipeline-parallel size (--backend megatron)")
    parser.add_argument(
        "--weights",
        type=float,
        nargs=2,
        default=(1.0, 1.0),
        metavar=("W1", "W2"),
        help="weights of the task's two rewards, in order (GDPO weights and the GRPO score's weights)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per step")
    parser.add_argument("--n", type=int, default=4, help="rollouts per prompt")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--timeout", type=float, default=1800, help="kill verl after this many seconds")
    parser.add_argument("--verbose", action="store_true", help="print verl's whole output")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check and print the verl command (and write its assets and command.txt into --out only if that folder "
        "is new or empty)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="--out holds a previous run: replace it (its assets/, rollouts/, checkpoints/, metrics.jsonl, verl.log, "
        "summary.json, curves.png and command.txt are removed first; other files stay)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="--out holds a run that saved checkpoints (-- trainer.save_freq=N): continue it from the last one",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="extra verl Hydra overrides, applied last (after `--`), e.g. -- trainer.logger=[console]",
    )
    cluster.add_arguments(parser)  # --nodes, --ray-address


def _config(args: argparse.Namespace, out: Path) -> command.RunConfig:
    return command.RunConfig(
        out=out,
        steps=args.steps,
        seed=args.seed,
        estimator=args.estimator,
        legacy=args.legacy,
        batch_size=args.batch_size,
        n=args.n,
        lr=args.lr,
        weights=tuple(args.weights),
        backend=args.backend,
        tp=args.tp,
        pp=args.pp,
        task=args.task,
        extra=(*args.overrides, *(("trainer.resume_mode=auto",) if args.resume else ())),
    )


def check_command(verl_args: list[str]) -> list[str]:
    """The errors `gdpo-verl check` finds in the composed verl command (seconds, before anything starts)."""
    from gdpo_verl.check import errors, validate_command

    return [f"{f.topic}: {f.message}" for f in errors(validate_command(verl_args))]


def _fail(message: str) -> int:
    print(f"gdpo-verl quickstart: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    out: Path = args.out.expanduser().resolve()
    cfg = _config(args, out)
    try:
        command.backend_overrides(cfg.backend, cfg.tp, cfg.pp)
        cluster.check_args(args, cfg)
        output_folder.check(out, args.overwrite, args.resume)
    except ValueError as exc:
        if not (args.dry_run and isinstance(exc, output_folder.FolderError) and out.is_dir()):
            return _fail(str(exc))
    missing = command.missing_backend_packages(cfg.backend)
    if missing and not args.dry_run:
        return _fail(
            f"--backend {cfg.backend} needs {', '.join(missing)}, not installed here; "
            "run `bash scripts/install_cpu.sh --megatron`"
        )
    verl = command.build(cfg, assets.locate(out / "assets"))
    if cluster.requested(args):  # several Ray nodes: gdpo_verl/quickstart/cluster.py
        verl = cluster.preview(args, cfg, assets.locate(out / "assets"))
    checked_at = time.monotonic()
    problems = check_command(list(verl.argv[3:]))
    check_s = time.monotonic() - checked_at
    if problems:
        listed = "".join(f"\n  {p}" for p in problems)
        return _fail(f"the verl command would fail (nothing was started):{listed}")
    if args.dry_run:
        # a dry run writes only into a fresh folder; into one that holds files, it only prints
        if output_folder.is_fresh(out):
            out.mkdir(parents=True, exist_ok=True)
            assets.build(out / "assets", seed=args.seed, task_module=tasks.get(args.task))
            (out / "command.txt").write_text(verl.shell_text())
        else:
            print(f"# {out} already holds files: nothing written", file=sys.stderr)
        print(verl.shell_text(), end="")
        return 0
    trainer = "legacy" if args.legacy else "V1"
    actor = "FSDP2" if args.backend == "fsdp2" else f"Megatron TP={args.tp} PP={args.pp}"
    print(
        f"gdpo-verl quickstart: {args.estimator.upper()} on verl main_ppo ({trainer} trainer, {actor} actor), "
        f"{args.steps} steps, task {args.task}, rewards {', '.join(tasks.get(args.task).REWARD_KEYS)} -> {out}",
        flush=True,
    )
    print(f"  the verl command passed gdpo-verl check ({check_s:.1f} s)")
    changed = output_folder.prepare(out, args.overwrite, args.resume)
    if changed:
        print(f"  --{'resume' if args.resume else 'overwrite'}: {'; '.join(changed)}")
    if not args.resume:
        assets.build(out / "assets", seed=args.seed, task_module=tasks.get(args.task))
    (out / "command.txt").write_text(verl.shell_text())
    print(f"  starting verl (Ray, workers, model); full log: {out / 'verl.log'}", flush=True)
    progress = display.Progress(cfg, args.verbose)
    try:
        if cluster.requested(args):
            result = cluster.run(args, cfg, assets.locate(out / "assets"), out / "verl.log", progress)
        else:
            result = runner.run(verl, out / "verl.log", progress, args.timeout)
    finally:
        progress.close()
    if result.stopped in (runner.BROKEN_PIPE, "SIGHUP"):
        _silence_stdout()  # nobody reads it any more
    return summarize(cfg, result, progress.reached())


def _silence_stdout() -> None:
    """Send what is still to be printed on stdout to /dev/null (its reader is gone)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _say(text: str) -> None:
    """One line on stderr, which may be gone too (a closed terminal)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError):
        pass


def _memory_text(result: runner.RunResult) -> str:
    if result.peak_mem_mb is None:
        return f"peak memory not measured ({result.memory_error or 'no process could be read'})"
    partial = f", some processes not measured: {result.memory_error}" if result.memory_error else ""
    return f"peak memory {result.peak_mem_mb / 1024:.1f} GiB{partial}"


def _stopped_line(result: runner.RunResult, reached: str) -> str:
    why = {runner.TIMEOUT: "--timeout passed", runner.BROKEN_PIPE: "its output pipe closed"}.get(
        result.stopped or "", f"by {result.stopped}"
    )
    left = f"; {len(result.left)} could not be stopped: pids {result.left}" if result.left else ""
    return (
        f"gdpo-verl quickstart: stopped ({why}) {reached}, after {result.wall_s:.0f} s; verl and the "
        f"{max(0, result.processes - 1)} processes it started are stopped{left}; partial outputs in "
        f"{result.log_path.parent}"
    )


def summarize(cfg: command.RunConfig, result: runner.RunResult, reached: str = "") -> int:
    """Write curves.png and summary.json (from this run's own outputs), print a short summary or why the run ended
    early; returns the exit status."""
    out = cfg.out
    task = tasks.get(cfg.task)
    keys = (*task.REWARD_KEYS, "score")
    rewards = report.all_step_rewards(out / "rollouts", task)
    metrics = report.read_metrics(out / "metrics.jsonl")
    title = f"{cfg.estimator.upper()} quickstart, {cfg.task} (seed {cfg.seed})"
    png = report.plot(rewards, out / "curves.png", title, task.REWARD_KEYS)
    summary = {
        "estimator": cfg.estimator,
        "task": cfg.task,
        "trainer": "legacy" if cfg.legacy else "v1",
        "backend": cfg.backend,
        "tp": cfg.tp,
        "pp": cfg.pp,
        "returncode": result.returncode,
        "stopped": result.stopped,
        "steps_done": sum(1 for m in metrics.values() if "timing_s/step" in m),
        "wall_s": round(result.wall_s, 1),
        "s_per_step": round(report.seconds_per_step(metrics), 3),
        "peak_mem_mb": None if result.peak_mem_mb is None else round(result.peak_mem_mb),
        "processes": result.processes,
        "processes_left": result.left,
        "rewards_first": {k: report.window_mean(rewards, k, first=True) for k in keys},
        "rewards_last": {k: report.window_mean(rewards, k, first=False) for k in keys},
        "gdpo_metrics_logged": any(k.startswith("gdpo/") for m in metrics.values() for k in m),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if result.stopped:
        _say(_stopped_line(result, reached))
        return result.returncode
    if result.returncode != 0:
        error = console.verl_error(result.tail) or [console.plain(line) for line in result.tail[-15:]]
        _say(f"verl exited with {result.returncode}; its error (full log: {result.log_path}):")
        _say("\n".join(f"  {line}" for line in error))
        return result.returncode or 1
    first, last = summary["rewards_first"], summary["rewards_last"]
    print(
        f"done: {summary['steps_done']} steps in {summary['wall_s']:.0f} s ({summary['s_per_step']:.2f} s/step), "
        + _memory_text(result)
    )
    for key in keys:
        print(f"  {key:8s} {display.fmt(first[key])} -> {display.fmt(last[key])}  (mean of first / last 20% of steps)")
    print(f"  metrics: {out / 'metrics.jsonl'}  curves: {png or '-'}  summary: {out / 'summary.json'}")
    if result.left:
        _say(f"gdpo-verl quickstart: {len(result.left)} of verl's processes could not be stopped: pids {result.left}")
    return 0
