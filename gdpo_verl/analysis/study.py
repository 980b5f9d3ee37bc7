"""GDPO vs GRPO over several seeds of the quickstart task: median and spread of each reward per step.

A study folder holds one quickstart output folder per run, ``ROOT/<estimator>/seed<k>/`` (what
``scripts/cpu_study.sh`` writes). The per-reward means of a step are recomputed from verl's rollout dump
(``rollouts/<step>.jsonl``) with the task's own reward functions, so GRPO runs, which log no ``gdpo/*`` metrics, are
measured exactly like GDPO runs. Each run's curve is first smoothed with a trailing moving average (a step's mean over
64 rollouts is noisy); across seeds we report the median and the min-max range per step.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from gdpo_verl.analysis.common import AnalysisError, save_figure

KEYS = ("format", "correct", "score")
SEED_DIR = re.compile(r"^seed(\d+)$")
Curve = dict[int, float]  # step -> value


def discover(root: str | Path) -> dict[str, dict[int, Path]]:
    """estimator -> seed -> run folder, for every ``ROOT/<estimator>/seed<k>/rollouts`` present."""
    root = Path(root)
    if not root.is_dir():
        raise AnalysisError(f"no such directory: {root}")
    runs: dict[str, dict[int, Path]] = {}
    for est_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for run_dir in sorted(est_dir.iterdir()):
            m = SEED_DIR.match(run_dir.name)
            if m and (run_dir / "rollouts").is_dir():
                runs.setdefault(est_dir.name, {})[int(m.group(1))] = run_dir
    if not runs:
        raise AnalysisError(f"{root}: no <estimator>/seed<k>/rollouts folders (run scripts/cpu_study.sh first)")
    return runs


def load_run(run_dir: Path) -> dict[str, Curve]:
    """reward key -> {step: mean over that step's rollouts}, from the run's rollout dump."""
    from gdpo_verl.quickstart.report import all_step_rewards

    per_step = all_step_rewards(run_dir / "rollouts")
    if not per_step:
        raise AnalysisError(f"{run_dir}: the rollout dump is empty")
    return {k: {s: r[k] for s, r in per_step.items() if k in r} for k in KEYS}


def smooth(curve: Curve, window: int) -> Curve:
    """Trailing moving average over the last ``window`` logged steps (window 1: unchanged)."""
    steps = sorted(curve)
    values = [curve[s] for s in steps]
    out: Curve = {}
    for i, s in enumerate(steps):
        part = values[max(0, i - window + 1) : i + 1]
        out[s] = statistics.fmean(part)
    return out


def band(curves: Sequence[Curve]) -> dict[str, list[float]]:
    """Median, min and max across runs at each step that every run reached."""
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    cols = [[c[s] for c in curves] for s in steps]
    return {
        "steps": [float(s) for s in steps],
        "median": [statistics.median(v) for v in cols],
        "min": [min(v) for v in cols],
        "max": [max(v) for v in cols],
    }


def window_mean(curve: Curve, first: bool, frac: float = 0.2) -> float:
    """Mean of the first (or last) ``frac`` of the logged steps, unsmoothed."""
    steps = sorted(curve)
    if not steps:
        return math.nan
    k = max(1, round(len(steps) * frac))
    return statistics.fmean(curve[s] for s in (steps[:k] if first else steps[-k:]))


def summarize(runs: Mapping[str, Mapping[int, Mapping[str, Curve]]], window: int) -> dict:
    """{estimator: {"seeds": [...], "band": {key: band}, "start": {key: [per seed]}, "end": {key: [per seed]}}}."""
    out: dict = {}
    for est, by_seed in runs.items():
        seeds = sorted(by_seed)
        out[est] = {
            "seeds": seeds,
            "band": {k: band([smooth(by_seed[s][k], window) for s in seeds]) for k in KEYS},
            "start": {k: [window_mean(by_seed[s][k], first=True) for s in seeds] for k in KEYS},
            "end": {k: [window_mean(by_seed[s][k], first=False) for s in seeds] for k in KEYS},
        }
    return out


def plot(summary: Mapping[str, Mapping], out: str | Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KEYS), figsize=(4.4 * len(KEYS), 3.6), squeeze=False)
    for ax, key in zip(axes[0], KEYS, strict=True):
        for est, s in summary.items():
            b = s["band"][key]
            line = ax.plot(b["steps"], b["median"], label=f"{est.upper()} (median of {len(s['seeds'])} seeds)")
            ax.fill_between(b["steps"], b["min"], b["max"], color=line[0].get_color(), alpha=0.2)
        ax.set_title(f"{key} (moving average over {window} steps)" if window > 1 else key)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean over the step's rollouts")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def table_rows(summary: Mapping[str, Mapping]) -> list[list[object]]:
    """One row per (estimator, key): first-20% and last-20% means, median over seeds and per seed."""
    rows: list[list[object]] = []
    for est, s in summary.items():
        for key in KEYS:
            start, end = s["start"][key], s["end"][key]
            per_seed = " ".join(f"{v:.3f}" for v in end)
            rows.append([est, key, statistics.median(start), statistics.median(end), per_seed])
    return rows
