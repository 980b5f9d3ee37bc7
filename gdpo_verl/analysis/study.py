"""Arms (GDPO, GRPO, ...) over several seeds of a quickstart task: median and spread of each reward per step.

A study folder holds one quickstart output folder per run, ``ROOT/<arm>/seed<k>/`` (what ``scripts/cpu_study.sh``
writes). The per-reward means of a step are recomputed from verl's rollout dump (``rollouts/<step>.jsonl``) with the
task's own reward functions (the task is read from the run's ``command.txt``), so GRPO runs, which log no ``gdpo/*``
metrics, are measured exactly like GDPO runs. So is ``collapsed``: the share of a step's prompt groups in which GRPO's
summed reward merges reward combinations that GDPO keeps apart (as ``gdpo/collapse/grpo_collapsed_frac``), computed
from the dump for every arm. Each run's curve is first smoothed with a trailing moving average (a step's mean over 64
rollouts is noisy); across seeds we report the median and the min-max range per step. Arms are compared with a
baseline arm seed by seed (same seed: same model init, data order and sampling seed).

``--data DIR`` keeps what the tables are computed from, small enough to commit: ``DIR/curves.csv`` (one row per arm,
seed and step: the unsmoothed per-step means) and ``DIR/metrics.csv`` (the same rows: the estimator's ``gdpo/*``
figures, ``actor/entropy`` and the step timings from each run's ``metrics.jsonl``). ``gdpo-verl analyze study
DIR/curves.csv`` recomputes every table and the figure from the first file alone.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from gdpo_verl.analysis.common import AnalysisError, save_figure

COLLAPSED = "collapsed"
ROW_KEYS = ("arm", "seed", "step")  # the first columns of both data files
KEPT_METRICS = re.compile(r"^(gdpo/(?!impl$).+|actor/entropy|timing_s/(step|adv))$")
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


def task_of(run_dir: Path) -> str:
    """The quickstart task of a run, from the reward function in its ``command.txt`` (none: the first task)."""
    from gdpo_verl.quickstart import tasks

    cmd = run_dir / "command.txt"
    if not cmd.is_file():
        return tasks.DEFAULT
    m = re.search(r"reward\.custom_reward_function\.path=pkg://(\S+)", cmd.read_text())
    by_module = {module: name for name, module in tasks.TASKS.items()}
    if not m or m.group(1) not in by_module:
        raise AnalysisError(f"{cmd}: not a quickstart command (reward function of none of {', '.join(tasks.TASKS)})")
    return by_module[m.group(1)]


def collapse_curve(rollout_dir: Path, task: ModuleType) -> Curve:
    """step -> share of prompt groups GRPO collapses, from a V1 dump (its ``uid`` names the group); {} without."""
    from gdpo_verl.analysis.rollouts import load_rollouts, prepare, step_report

    df = load_rollouts(rollout_dir)
    if "uid" not in df.columns:
        return {}
    values = [task.rewards(str(o), str(g)) for o, g in zip(df["output"], df["gts"], strict=True)]
    for key in task.REWARD_KEYS:
        df[key] = [v[key] for v in values]
    df, keys, _ = prepare(df, task.REWARD_KEYS, "uid", "step", group_col_given=True)
    weights = [1.0] * len(keys)
    return {int(step): step_report(part, keys, weights, 1e-6)["collapsed_frac"] for step, part in df.groupby("_step")}


def load_run(run_dir: Path) -> dict[str, Curve]:
    """reward key (the task's, ``score`` and ``collapsed``) -> {step: mean over that step's rollouts}."""
    from gdpo_verl.quickstart import tasks
    from gdpo_verl.quickstart.report import all_step_rewards

    task = tasks.get(task_of(run_dir))
    per_step = all_step_rewards(run_dir / "rollouts", task)
    if not per_step:
        raise AnalysisError(f"{run_dir}: the rollout dump is empty")
    curves = {k: {s: r[k] for s, r in per_step.items() if k in r} for k in (*task.REWARD_KEYS, "score")}
    collapsed = collapse_curve(run_dir / "rollouts", task)
    return {**curves, COLLAPSED: collapsed} if collapsed else curves


Runs = dict[str, dict[int, dict[str, Curve]]]  # arm -> seed -> key -> curve


def load_runs(found: Mapping[str, Mapping[int, Path]]) -> Runs:
    """The curves of every run folder :func:`discover` found."""
    return {arm: {seed: load_run(d) for seed, d in by_seed.items()} for arm, by_seed in found.items()}


def _write_rows(path: Path, columns: Sequence[str], rows: Mapping[tuple[str, int, int], Mapping[str, float]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([*ROW_KEYS, *columns])
        for (arm, seed, step), values in rows.items():
            out.writerow([arm, seed, step, *(repr(values[c]) if c in values else "" for c in columns)])


def write_curves(runs: Runs, path: Path) -> None:
    """``curves.csv``: one row per arm, seed and step, one column per curve (empty: not logged at that step)."""
    keys = study_keys(runs)
    rows: dict[tuple[str, int, int], dict[str, float]] = {}
    for arm, by_seed in runs.items():
        for seed in sorted(by_seed):
            curves = by_seed[seed]
            for step in sorted(set().union(*(curves[k] for k in keys))):
                rows[(arm, seed, step)] = {k: curves[k][step] for k in keys if step in curves[k]}
    _write_rows(path, keys, rows)


def write_metrics(found: Mapping[str, Mapping[int, Path]], path: Path) -> None:
    """``metrics.csv``: the kept metrics (:data:`KEPT_METRICS`) of every run's ``metrics.jsonl``, same rows."""
    from gdpo_verl.analysis.curves import load_metrics

    rows: dict[tuple[str, int, int], dict[str, float]] = {}
    columns: set[str] = set()
    for arm, by_seed in found.items():
        for seed in sorted(by_seed):
            kept = {m: v for m, v in load_metrics(by_seed[seed]).items() if KEPT_METRICS.match(m)}
            columns |= set(kept)
            for step in sorted(set().union(*kept.values())):
                rows[(arm, seed, step)] = {m: v[step] for m, v in kept.items() if step in v}
    _write_rows(path, sorted(columns), rows)


def read_curves(path: Path) -> Runs:
    """The runs' curves back from a ``curves.csv`` (:func:`write_curves`)."""
    runs: Runs = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or tuple(header[:3]) != ROW_KEYS or len(header) < 4:
            raise AnalysisError(f"{path}: not a curves file (its header must start with {','.join(ROW_KEYS)},<key>)")
        keys = header[3:]
        for line, row in enumerate(reader, 2):
            try:
                arm, seed, step = row[0], int(row[1]), int(row[2])
                values = [float(v) if v else None for v in row[3:]]
            except (IndexError, ValueError):
                raise AnalysisError(f"{path}:{line}: expected arm,int seed,int step and numbers, got {row}") from None
            if len(values) != len(keys):
                raise AnalysisError(f"{path}:{line}: {len(values)} values for {len(keys)} keys")
            curves = runs.setdefault(arm, {}).setdefault(seed, {k: {} for k in keys})
            for key, value in zip(keys, values, strict=True):
                if value is not None:
                    curves[key][step] = value
    if not runs:
        raise AnalysisError(f"{path}: no rows")
    return runs


def study_keys(runs: Mapping[str, Mapping[int, Mapping[str, Curve]]]) -> list[str]:
    """The curves every run has, in the runs' order; runs of different tasks are an error."""
    found = {tuple(curves) for by_seed in runs.values() for curves in by_seed.values()}
    if len(found) != 1:
        raise AnalysisError(f"the runs do not share one task (their curves: {sorted(found)})")
    return list(found.pop())


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
    """Mean of the first (or last) ``frac`` of the logged steps, unsmoothed (``frac=1``: every step)."""
    steps = sorted(curve)
    if not steps:
        return math.nan
    k = max(1, round(len(steps) * frac))
    return statistics.fmean(curve[s] for s in (steps[:k] if first else steps[-k:]))


def summarize(runs: Mapping[str, Mapping[int, Mapping[str, Curve]]], window: int) -> dict:
    """{arm: {"seeds": [...], "keys": [...], "band": {key: band}, "start"/"end": {key: [per seed]}}}."""
    keys = study_keys(runs)
    out: dict = {}
    for est, by_seed in runs.items():
        seeds = sorted(by_seed)
        out[est] = {
            "seeds": seeds,
            "keys": keys,
            "band": {k: band([smooth(by_seed[s][k], window) for s in seeds]) for k in keys},
            "start": {k: [window_mean(by_seed[s][k], first=True) for s in seeds] for k in keys},
            "end": {k: [window_mean(by_seed[s][k], first=False) for s in seeds] for k in keys},
            "all": {k: [window_mean(by_seed[s][k], first=False, frac=1.0) for s in seeds] for k in keys},
        }
    return out


def paired(summary: Mapping[str, Mapping], baseline: str, stat: str = "end") -> list[list[object]]:
    """Per arm and key: the per-run statistic (``end``: last-20% mean, ``all``: mean over every step) minus the
    baseline's on the same seed; median difference and the counts of seeds where the arm is above / below / equal to
    the baseline (seeds that only one of them has are left out)."""
    if baseline not in summary:
        raise AnalysisError(f"no baseline arm {baseline!r}; arms: {', '.join(summary)}")
    base = summary[baseline]
    rows: list[list[object]] = []
    for est, s in summary.items():
        if est == baseline:
            continue
        common = [seed for seed in s["seeds"] if seed in base["seeds"]]
        for key in s["keys"]:
            diffs = [
                s[stat][key][s["seeds"].index(seed)] - base[stat][key][base["seeds"].index(seed)] for seed in common
            ]
            if not diffs:
                continue
            wins = sum(d > 0 for d in diffs)
            losses = sum(d < 0 for d in diffs)
            rows.append(
                [est, key, len(diffs), statistics.median(diffs), f"{wins}/{losses}/{len(diffs) - wins - losses}"]
            )
    return rows


def plot(summary: Mapping[str, Mapping], out: str | Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = next(iter(summary.values()))["keys"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for est, s in summary.items():
            b = s["band"][key]
            line = ax.plot(b["steps"], b["median"], label=f"{est} (median of {len(s['seeds'])} seeds)")
            ax.fill_between(b["steps"], b["min"], b["max"], color=line[0].get_color(), alpha=0.2)
        ax.set_title(f"{key} (moving average over {window} steps)" if window > 1 else key)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean over the step's rollouts")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def table_rows(summary: Mapping[str, Mapping]) -> list[list[object]]:
    """One row per (arm, key): first-20%, last-20% and all-step means, median over seeds; last 20% per seed."""
    rows: list[list[object]] = []
    for est, s in summary.items():
        for key in s["keys"]:
            start, end, every = s["start"][key], s["end"][key], s["all"][key]
            per_seed = " ".join(f"{v:.3f}" for v in end)
            medians = [statistics.median(v) for v in (start, end, every)]
            rows.append([est, key, *medians, per_seed])
    return rows


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def markdown(summary: Mapping[str, Mapping], baseline: str) -> str:
    """The study's two tables as Markdown (the form docs/cpu-study.md quotes, verbatim): per arm and reward the
    first-20%, last-20% and all-step medians with the last 20% per seed; then each arm minus the baseline seed by
    seed, over all steps and over the last 20%."""
    seeds = next(iter(summary.values()))["seeds"]
    lines = [
        f"| arm | reward | first 20% | last 20% | all steps | last 20%, seeds {' / '.join(map(str, seeds))} |",
        "|---|---|---|---|---|---|",
    ]
    for est, key, start, end, every, per_seed in sorted(table_rows(summary), key=lambda row: row[0] != baseline):
        lines.append(f"| {est} | {key} | {start:.3f} | {end:.3f} | {every:.3f} | {per_seed.replace(' ', ' / ')} |")
    if baseline in summary and len(summary) > 1:
        lines += [
            "",
            "| arm | reward | all steps | above/below/equal | last 20% | above/below/equal |",
            "|---|---|---|---|---|---|",
        ]
        last = {(row[0], row[1]): row for row in paired(summary, baseline, "end")}
        for est, key, _, diff, counts in paired(summary, baseline, "all"):
            end_row = last[(est, key)]
            lines.append(f"| {est} | {key} | {_signed(diff)} | {counts} | {_signed(end_row[3])} | {end_row[4]} |")
    return "\n".join(lines) + "\n"
