"""Collapse report for dumped rollouts: per step, how many groups GRPO collapses that GDPO keeps apart.

Input: verl's ``trainer.rollout_data_dir`` (one ``{step}.jsonl`` per step; each line has input, output, gts, score,
step and every ``reward_extra_info`` key: verl writes them on the legacy trainer, the plugin's dump hook on the V1
trainer, with ``is_padding`` marking verl's batch-padding rows, which are left out), or one .jsonl / .parquet file
with per-reward columns and a group id.

Grouping: ``--group-col`` (default ``uid``). verl's V1 trainer writes ``uid`` as ``{uid}_{session}_{output}``: the group
is ``{uid}`` and only each session's final output counts (as verl's GRPO does). The legacy trainer writes no uid; then
rollouts are grouped by the prompt text (``input``) within each step, which merges prompts repeated in one batch.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gdpo_verl.analysis.common import AnalysisError
from gdpo_verl.core import gdpo_advantages, group_index, group_normalize
from gdpo_verl.metrics import distinct_per_group
from gdpo_verl.row_keys import V1_KEY

META_COLS = ("input", "output", "gts", "score", "step", "uid", "request_id", "is_padding")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise AnalysisError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def _read_one(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        df = pd.DataFrame.from_records(_read_jsonl(path))
    elif path.suffix == ".parquet":
        df = pd.read_parquet(path)
    else:
        raise AnalysisError(f"{path}: expected a .jsonl or .parquet file")
    if path.stem.isdigit():  # verl names its dump files {step}.jsonl
        df["_file_step"] = int(path.stem)
    return df


def load_rollouts(path: str | Path) -> pd.DataFrame:
    """One frame from a file, or from every .jsonl/.parquet file of a directory (verl's rollout_data_dir)."""
    p = Path(path)
    if not p.exists():
        raise AnalysisError(f"no such file or directory: {p}")
    files = sorted(f for f in p.iterdir() if f.suffix in (".jsonl", ".parquet")) if p.is_dir() else [p]
    if not files:
        raise AnalysisError(f"{p}: no .jsonl or .parquet files in this directory")
    frames = [_read_one(f) for f in files]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if df.empty:
        raise AnalysisError(f"{p}: no rollouts")
    return df


def _as_float(value: Any, col: str) -> float:
    if value is None or isinstance(value, bool | int | float):
        out = math.nan if value is None else float(value)
    else:
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise AnalysisError(f"column {col!r} has a non-numeric value: {value!r}") from None
    return out if math.isfinite(out) else math.nan  # NaN / None / inf = missing, as the estimator treats them


def infer_keys(df: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
    """Numeric columns that are not verl's dump fields or the step/group columns."""
    keys = []
    for col in df.columns:
        if col in META_COLS or col in exclude or col.startswith("_"):
            continue
        values = df[col].dropna()
        if len(values) and all(isinstance(v, numbers.Number | np.bool_) for v in values):
            keys.append(col)
    return keys


def prepare(
    df: pd.DataFrame, keys: Sequence[str] | None, group_col: str, step_col: str, group_col_given: bool
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Add ``_step`` and ``_group``, keep V1 sessions' final outputs, pick the keys. Returns (frame, keys, notes)."""
    notes: list[str] = []
    columns = ", ".join(str(c) for c in df.columns if not str(c).startswith("_"))
    df = df.copy()
    if step_col in df.columns:
        df["_step"] = df[step_col]
    elif "_file_step" in df.columns:
        df["_step"] = df["_file_step"]
        notes.append(f"no {step_col!r} column: steps taken from the file names")
    else:
        df["_step"] = 0
        notes.append(f"no {step_col!r} column: all rows treated as one step")
    if "is_padding" in df.columns:  # verl's synthetic rows (V1 batch padding), marked by our dump hook: no rollouts
        padding = df["is_padding"].fillna(False).astype(bool)
        if padding.any():
            df = df[~padding]
            notes.append(f"left out {int(padding.sum())} padding rows (verl's batch padding, is_padding)")
    if group_col in df.columns:
        labels = df[group_col].astype(str)
        parts = labels.str.extract(V1_KEY)
        if group_col == "uid" and parts[0].notna().all():  # V1 trainer: {uid}_{session}_{output}
            df["_group"], df["_session"], df["_out"] = parts[0], parts[0] + "_" + parts[1], parts[2].astype(int)
            last = df.groupby(["_step", "_session"])["_out"].transform("max")
            dropped = int((df["_out"] != last).sum())
            df = df[df["_out"] == last]
            notes.append(f"V1 uid keys: grouped by prompt uid; kept each session's final output ({dropped} dropped)")
        else:
            df["_group"] = labels
    elif not group_col_given and "input" in df.columns:
        df["_group"] = df["input"].astype(str)
        notes.append(f"no {group_col!r} column: grouped by the prompt text ('input') within each step")
    else:
        raise AnalysisError(f"no group column {group_col!r}; columns are: {columns}")
    if keys:
        unknown = [k for k in keys if k not in df.columns]
        if unknown:
            raise AnalysisError(f"unknown reward key(s) {unknown}; columns are: {columns}")
        keys = list(keys)
    else:
        keys = infer_keys(df, (step_col, group_col))
        if not keys and "score" in df.columns:
            keys = ["score"]
            notes.append("no per-reward columns found: using 'score' only (pass --keys)")
        elif not keys:
            raise AnalysisError(f"no numeric reward columns found; pass --keys (columns are: {columns})")
        else:
            notes.append(f"reward keys: {', '.join(keys)}")
    return df, keys, notes


def step_report(df: pd.DataFrame, keys: Sequence[str], weights: Sequence[float], eps: float) -> dict[str, Any]:
    """Collapse figures for one step (``df`` already has ``_group``)."""
    values = [[_as_float(v, k) for v in df[k]] for k in keys]  # (K, B)
    r = torch.tensor(values, dtype=torch.float64).reshape(len(keys), len(df)).T
    gid, n_groups = group_index(list(df["_group"]))
    w = torch.as_tensor(weights, dtype=torch.float64)
    res = gdpo_advantages(r, gid, w, eps_group=eps, batch_norm="none")
    # GRPO on the same rewards: weighted sum (missing as 0, like gdpo_verl.metrics), then group z-score.
    grpo = group_normalize((torch.nan_to_num(r, nan=0.0) @ w).unsqueeze(-1), gid, n_groups, eps).squeeze(-1)
    multi = torch.bincount(gid, minlength=n_groups) >= 2
    n_multi = int(multi.sum())
    d_gdpo = distinct_per_group(res.combined, gid)[multi].to(torch.float64)
    d_grpo = distinct_per_group(grpo, gid)[multi].to(torch.float64)
    collapsed = int((d_grpo < d_gdpo).sum())
    moving = torch.zeros(n_groups, len(keys), dtype=torch.float64).index_add_(0, gid, (res.per_reward != 0).double())
    flat = (moving == 0)[multi].to(torch.float64)

    def mean(x: torch.Tensor) -> float:
        return float(x.mean()) if x.numel() else 0.0

    return {
        "samples": len(df),
        "groups": n_multi,
        "collapsed": collapsed,
        "collapsed_frac": collapsed / n_multi if n_multi else 0.0,
        "distinct_gdpo": mean(d_gdpo),
        "distinct_grpo": mean(d_grpo),
        "zero_var_frac": {k: mean(flat[:, i]) for i, k in enumerate(keys)},
        "missing": {k: int(torch.isnan(r[:, i]).sum()) for i, k in enumerate(keys)},
    }


def analyze_rollouts(
    path: str | Path,
    keys: Sequence[str] | None = None,
    group_col: str = "uid",
    step_col: str = "step",
    weights: Sequence[float] | None = None,
    eps: float = 1e-6,
    group_col_given: bool = False,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Returns (one report per step, reward keys used, notes)."""
    df, keys, notes = prepare(load_rollouts(path), keys, group_col, step_col, group_col_given)
    w = list(weights) if weights is not None else [1.0] * len(keys)
    if len(w) != len(keys):
        raise AnalysisError(f"{len(w)} weights for {len(keys)} reward keys {list(keys)}")
    reports = []
    for step, part in df.groupby("_step", sort=True):
        reports.append({"step": step.item() if hasattr(step, "item") else step, **step_report(part, keys, w, eps)})
    return reports, list(keys), notes
