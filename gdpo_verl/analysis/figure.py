"""The distinct-advantage-groups figure (paper Fig. 3): counts vs G at fixed N, and vs N at fixed G."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gdpo_verl.analysis.common import AnalysisError, save_figure

LABELS = {"grpo": "GRPO", "grpo_no_std": "GRPO w/o std", "gdpo": "GDPO"}


def _panels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, int, str, list[dict[str, Any]]]]:
    """(fixed axis, its value, varying axis, rows) for the fixed N and fixed G that have the most points (>= 2)."""
    panels = []
    for fixed, vary in (("rewards", "rollouts"), ("rollouts", "rewards")):
        groups: dict[int, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(r[fixed], []).append(r)
        value, best = max(sorted(groups.items()), key=lambda kv: len(kv[1]))
        if len(best) >= 2:
            panels.append((fixed, value, vary, sorted(best, key=lambda r: r[vary])))
    return panels


def plot_distinct(rows: Sequence[dict[str, Any]], out: str | Path) -> None:
    panels = _panels(rows)
    if not panels:
        raise AnalysisError("--plot needs a range of at least two values (e.g. --rollouts 2-16)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {"rewards": ("N", "number of rewards N"), "rollouts": ("G", "number of rollouts G")}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (fixed, value, vary, part) in zip(axes[0], panels, strict=True):
        xs = [r[vary] for r in part]
        for key, label in LABELS.items():
            ax.plot(xs, [r[key] for r in part], marker="o", label=label)
        ax.set_yscale("log")
        ax.set_xlabel(names[vary][1])
        ax.set_ylabel("distinct advantage groups")
        ax.set_title(f"binary rewards, {names[fixed][0]} = {value}")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, out)
