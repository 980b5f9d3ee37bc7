"""Per-reward curves of two runs from their metrics JSONL, side by side, plus the last-step values.

verl's file logger (``trainer.logger=[file]``, verl/utils/tracking.py ``FileLogger``) writes one line per step,
``{"step": s, "data": {metric: value, ...}}``, to ``$VERL_FILE_LOGGER_PATH`` or
``$VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl``. Flat lines ``{"step": s, metric: value, ...}`` are read too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from gdpo_verl.analysis.common import AnalysisError, save_figure

Series = dict[int, float]
KEY_RE = re.compile(r"^gdpo/(.+)/(\w+)$")
NOT_REWARDS = ("batch", "collapse", "kl")


def metrics_file(run: str | Path) -> Path:
    """A run is a metrics .jsonl file, or a directory holding metrics.jsonl or exactly one .jsonl file."""
    p = Path(run)
    if not p.exists():
        raise AnalysisError(f"no such file or directory: {p}")
    if p.is_file():
        return p
    if (p / "metrics.jsonl").is_file():
        return p / "metrics.jsonl"
    found = sorted(p.glob("*.jsonl"))
    if len(found) != 1:
        what = "no .jsonl file" if not found else f"several .jsonl files ({', '.join(f.name for f in found)})"
        raise AnalysisError(f"{p}: {what}; pass the metrics file itself")
    return found[0]


def load_metrics(run: str | Path) -> dict[str, Series]:
    """metric name -> {step: value}; later lines for the same step win; non-numeric values are skipped."""
    path = metrics_file(run)
    out: dict[str, Series] = {}
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise AnalysisError(f"{path}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict) or "step" not in row:
                raise AnalysisError(f"{path}:{i}: expected an object with a 'step' key")
            data = row["data"] if isinstance(row.get("data"), dict) else row
            for name, value in data.items():
                if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                    out.setdefault(name, {})[int(row["step"])] = float(value)
    if not out:
        raise AnalysisError(f"{path}: no metrics")
    return out


def reward_keys(*runs: dict[str, Series], stat: str = "mean") -> list[str]:
    found = {m.group(1) for run in runs for name in run if (m := KEY_RE.match(name)) and m.group(2) == stat}
    return sorted(found - set(NOT_REWARDS))


def compare(
    run_a: str | Path, run_b: str | Path, keys: Sequence[str] | None = None, stat: str = "mean"
) -> tuple[list[str], dict[str, Series], dict[str, Series]]:
    """Returns (reward keys, run A metrics, run B metrics); an unknown key is an error."""
    a, b = load_metrics(run_a), load_metrics(run_b)
    available = reward_keys(a, b, stat=stat)
    shared = sorted(set(reward_keys(a, stat=stat)) & set(reward_keys(b, stat=stat)))
    if keys:
        unknown = [k for k in keys if f"gdpo/{k}/{stat}" not in a and f"gdpo/{k}/{stat}" not in b]
        if unknown:
            raise AnalysisError(f"unknown key(s) {unknown} (no gdpo/<key>/{stat}); available: {available or 'none'}")
    elif not available:
        raise AnalysisError(f"no gdpo/<key>/{stat} metrics in either run")
    keys = list(keys or shared or available)  # by default the keys both runs have
    for label, run, metrics in (("A", run_a, a), ("B", run_b, b)):
        lacking = [k for k in keys if f"gdpo/{k}/{stat}" not in metrics]
        if lacking:
            has = reward_keys(metrics, stat=stat)
            raise AnalysisError(
                f"run {label} ({run}) has no gdpo/<key>/{stat} for {lacking} (its per-reward keys: {has or 'none'}); "
                "gdpo-verl logs them with algorithm.adv_estimator=gdpo, and for any other estimator on verl's V1 "
                "trainer from the reward function's extra keys (not on the legacy trainer)"
            )
    return keys, a, b


def last(series: Series | None) -> tuple[int | None, float]:
    if not series:
        return None, math.nan
    step = max(series)
    return step, series[step]


def plot(keys: Sequence[str], runs: dict[str, dict[str, Series]], out: str | Path, stat: str = "mean") -> None:
    """One panel per reward key, each run a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for label, metrics in runs.items():
            series = metrics.get(f"gdpo/{key}/{stat}", {})
            steps = sorted(series)
            ax.plot(steps, [series[s] for s in steps], marker="." if len(steps) < 30 else None, label=label)
        ax.set_title(f"{key} ({stat})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    save_figure(fig, out)
