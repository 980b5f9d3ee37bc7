"""Per-step reward figures from verl's own outputs: the rollout dumps and the ``file`` logger's metrics.jsonl.

The per-reward means are recomputed from verl's rollout dump (``trainer.rollout_data_dir``: one ``<step>.jsonl`` per
step with each decoded response and its ground truth), so GRPO runs, which log no per-reward metrics, get the same
curves as GDPO runs (where they equal the estimator's ``gdpo/<key>/mean``).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import ModuleType

from gdpo_verl.quickstart import task as default_task


def step_rewards(rollout_file: Path, task: ModuleType = default_task) -> dict[str, float]:
    """Mean of each of ``task``'s rewards (and of the total score) over one step's rollouts."""
    rows = [json.loads(line) for line in rollout_file.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    out = {"score": statistics.fmean(float(r.get("score", 0.0)) for r in rows)}
    per_rollout = [task.rewards(r["output"], str(r["gts"])) for r in rows]
    for key in task.REWARD_KEYS:
        out[key] = statistics.fmean(v[key] for v in per_rollout)
    out["n"] = len(rows)
    return out


def all_step_rewards(rollout_dir: Path, task: ModuleType = default_task) -> dict[int, dict[str, float]]:
    files = sorted(rollout_dir.glob("*.jsonl"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    return {int(p.stem): step_rewards(p, task) for p in files if p.stem.isdigit()}


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    """verl's file logger: one ``{"step": N, "data": {...}}`` per line."""
    out: dict[int, dict[str, float]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out.setdefault(int(rec["step"]), {}).update(rec.get("data", {}))
    return out


def plot(
    rewards: dict[int, dict[str, float]], path: Path, title: str, keys: tuple[str, ...] = default_task.REWARD_KEYS
) -> Path | None:
    """Per-reward curves (mean over each step's rollouts) as a PNG."""
    if not rewards:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(rewards)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for key, style in zip((*keys, "score"), ("-o", "-s", "-^", "-v", "-d")[: len(keys)] + ("--",), strict=True):
        ax.plot(steps, [rewards[s].get(key, math.nan) for s in steps], style, label=key, markersize=3)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean over rollouts")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def window_mean(rewards: dict[int, dict[str, float]], key: str, first: bool, frac: float = 0.2) -> float:
    steps = sorted(rewards)
    if not steps:
        return math.nan
    k = max(1, int(len(steps) * frac))
    chosen = steps[:k] if first else steps[-k:]
    return statistics.fmean(rewards[s].get(key, math.nan) for s in chosen)


def seconds_per_step(metrics: dict[int, dict[str, float]]) -> float:
    """Median of verl's ``timing_s/step`` without step 1 (which includes warm-up)."""
    times = [m["timing_s/step"] for s, m in sorted(metrics.items()) if "timing_s/step" in m]
    times = times[1:] or times
    return statistics.median(times) if times else math.nan
