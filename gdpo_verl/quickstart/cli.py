"""``gdpo-verl quickstart``: train a tiny model with the real verl ``main_ppo`` on CPU, two rewards, GDPO or GRPO."""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

from gdpo_verl.quickstart import assets, cluster, command, console, report, runner, tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=40, help="training steps (default 40: 2-3 min on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("gdpo_quickstart"), help="output folder (default ./gdpo_quickstart)"
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
    parser.add_argument("--dry-run", action="store_true", help="build the assets and print the verl command only")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="extra verl Hydra overrides, applied last (after `--`), e.g. -- trainer.logger=[console]",
    )
    cluster.add_arguments(parser)  # --nodes, --ray-address


def _fmt(value: float | None) -> str:
    return "  -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:5.3f}"


class Progress:
    """Condenses verl's console output to one line per training step (the full log goes to verl.log)."""

    def __init__(self, cfg: command.RunConfig, verbose: bool) -> None:
        self.cfg, self.verbose = cfg, verbose
        self.started = time.monotonic()
        self.seen_first = False
        self.task = tasks.get(cfg.task)
        self.keys = self.task.REWARD_KEYS

    def __call__(self, line: str) -> None:
        if self.verbose:
            print(line, flush=True)
            return
        parsed = console.parse_step(line)
        if parsed is None:
            if "Traceback" in line or "Error" in line and "Warning" not in line:
                print(f"  verl: {line.strip()[:200]}", flush=True)
            return
        step, metrics = parsed
        if not self.seen_first:
            self.seen_first = True
            print(
                f"  first step after {time.monotonic() - self.started:.0f} s (Ray, workers, model start-up)", flush=True
            )
            print("   step " + "".join(f"{k:>8s} " for k in self.keys) + "  score   s/step", flush=True)
        if "timing_s/step" in metrics:
            rollout_file = self.cfg.out / "rollouts" / f"{step}.jsonl"
            rewards = report.step_rewards(rollout_file, self.task) if rollout_file.exists() else {}
            print(
                f"  {step:3d}/{self.cfg.steps:<3d} "
                + "".join(f"   {_fmt(rewards.get(k))}" for k in self.keys)
                + f"   {_fmt(metrics.get('critic/score/mean'))}   {metrics['timing_s/step']:5.1f}",
                flush=True,
            )
        val = {k.split("/")[-2]: v for k, v in metrics.items() if k.startswith("val-aux/") and k.endswith("/mean@1")}
        if val:
            print(
                f"  val@{step:<3d} "
                + "".join(f"   {_fmt(val.get(k))}" for k in self.keys)
                + f"   {_fmt(val.get('score'))}   (greedy, validation set)",
                flush=True,
            )


def run(args: argparse.Namespace) -> int:
    out: Path = args.out.resolve()
    if (out / "rollouts").exists():
        shutil.rmtree(out / "rollouts")  # verl appends to existing dumps
    out.mkdir(parents=True, exist_ok=True)
    cfg = command.RunConfig(
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
        extra=tuple(args.overrides),
    )
    try:
        command.backend_overrides(cfg.backend, cfg.tp, cfg.pp)
    except ValueError as exc:
        print(f"gdpo-verl quickstart: {exc}", file=sys.stderr)
        return 2
    missing = command.missing_backend_packages(cfg.backend)
    if missing and not args.dry_run:
        print(
            f"gdpo-verl quickstart: --backend {cfg.backend} needs {', '.join(missing)}, not installed here; "
            "run `bash scripts/install_cpu.sh --megatron`",
            file=sys.stderr,
        )
        return 2
    trainer = "legacy" if args.legacy else "V1"
    actor = "FSDP2" if args.backend == "fsdp2" else f"Megatron TP={args.tp} PP={args.pp}"
    print(
        f"gdpo-verl quickstart: {args.estimator.upper()} on verl main_ppo ({trainer} trainer, {actor} actor), "
        f"{args.steps} steps, task {args.task}, rewards {', '.join(tasks.get(args.task).REWARD_KEYS)} -> {out}",
        flush=True,
    )
    built = assets.build(out / "assets", seed=args.seed, task_module=tasks.get(args.task))
    if cluster.requested(args):  # several Ray nodes: gdpo_verl/quickstart/cluster.py
        return cluster.run_quickstart(args, cfg, built, Progress(cfg, args.verbose), summarize)
    verl = command.build(cfg, built)
    (out / "command.txt").write_text(verl.shell_text())
    if args.dry_run:
        print(verl.shell_text(), end="")
        return 0
    print(f"  starting verl (Ray, workers, model); full log: {out / 'verl.log'}", flush=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    result = runner.run(verl, out / "verl.log", Progress(cfg, args.verbose), args.timeout)
    return summarize(cfg, result)


def _memory_text(result: runner.RunResult) -> str:
    if result.peak_mem_mb is None:
        return f"peak memory not measured ({result.memory_error or 'no process could be read'})"
    partial = f", some processes not measured: {result.memory_error}" if result.memory_error else ""
    return f"peak memory {result.peak_mem_mb / 1024:.1f} GiB{partial}"


def summarize(cfg: command.RunConfig, result: runner.RunResult) -> int:
    """Write curves.png and summary.json, print a short summary; returns the exit status."""
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
        "steps_done": sum(1 for m in metrics.values() if "timing_s/step" in m),
        "wall_s": round(result.wall_s, 1),
        "s_per_step": round(report.seconds_per_step(metrics), 3),
        "peak_mem_mb": None if result.peak_mem_mb is None else round(result.peak_mem_mb),
        "rewards_first": {k: report.window_mean(rewards, k, first=True) for k in keys},
        "rewards_last": {k: report.window_mean(rewards, k, first=False) for k in keys},
        "gdpo_metrics_logged": any(k.startswith("gdpo/") for m in metrics.values() for k in m),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if result.returncode != 0:
        print(f"verl exited with {result.returncode}; last lines of {result.log_path}:", file=sys.stderr)
        print("\n".join(result.tail[-15:]), file=sys.stderr)
        return result.returncode or 1
    first, last = summary["rewards_first"], summary["rewards_last"]
    print(
        f"done: {summary['steps_done']} steps in {summary['wall_s']:.0f} s ({summary['s_per_step']:.2f} s/step), "
        + _memory_text(result)
    )
    for key in keys:
        print(f"  {key:8s} {_fmt(first[key])} -> {_fmt(last[key])}  (mean of first / last 20% of steps)")
    print(f"  metrics: {out / 'metrics.jsonl'}  curves: {png or '-'}  summary: {out / 'summary.json'}")
    return 0
