#!/usr/bin/env python3
"""Compare the GDPO and GRPO runs of the GPU regression against ci/thresholds.yaml.

    python ci/check_results.py --run gdpo=out/gdpo.jsonl --run grpo=out/grpo.jsonl [--thresholds ci/thresholds.yaml]

Reads verl's file-logger JSONL (one ``{"step": n, "data": {metric: value}}`` per line; flat lines with a ``step``
also work). Each check averages a metric over its last ``window`` logged values (and, for ``improve``, its first)
and compares that with ``min`` / ``max`` / ``improve``, or with another run (``compare``, the mean over the runs a
pattern matches, e.g. one per seed). ``total_min`` bounds the sum of every logged value (a metric never logged sums
to 0); ``all_finite`` requires every logged value to be finite; ``at_least`` bounds (metric - other metric) of the
same run. A metric name may contain ``{key}``, expanded over ``keys``; a run name may be a pattern (``gdpo-*``).
Prints one table row per check; exits 1 if any check fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from gdpo_verl.analysis import curves
from gdpo_verl.analysis.common import AnalysisError

Series = list[tuple[int, float]]


@dataclass
class Row:
    check: str
    run: str
    metric: str
    value: float | None
    bound: str
    ok: bool


def load_metrics(path: str) -> dict[str, Series]:
    """metric -> [(step, value)] sorted by step (the analysis CLI's reader of metrics JSONL)."""
    try:
        series = curves.load_metrics(path)
    except AnalysisError as e:
        raise ValueError(str(e)) from None
    return {name: sorted(values.items()) for name, values in series.items()}


def window_mean(values: Series, window: int, first: bool = False) -> float:
    picked = values[:window] if first else values[-window:]
    return sum(v for _, v in picked) / len(picked)


def _expand(check: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(label, metric) per key of the check."""
    metric = str(check["metric"])
    keys = check.get("keys") or [None]
    for key in keys:
        yield (check.get("name") or metric).replace("{key}", str(key)), metric.replace("{key}", str(key))


def _runs(check: Mapping[str, Any], names: Sequence[str] = ()) -> list[str]:
    run = check.get("run", "gdpo")
    patterns = [run] if isinstance(run, str) else list(run)
    return [n for pat in patterns for n in (sorted(fnmatch.filter(names, pat)) or [pat])]


def evaluate(thresholds: Mapping[str, Any], runs: Mapping[str, Mapping[str, Series]]) -> list[Row]:
    rows: list[Row] = []
    for check in thresholds.get("checks", []):
        window = int(check.get("window", thresholds.get("window", 5)))
        for label, metric in _expand(check):
            if "compare" in check:
                rows.append(_compare(label, metric, check["compare"], runs, window))
                continue
            for run in _runs(check, list(runs)):
                rows += _bounds(label, metric, check, run, runs, window)
    return rows


def _bounds(
    label: str, metric: str, check: Mapping[str, Any], run: str, runs: Mapping[str, Mapping[str, Series]], window: int
) -> list[Row]:
    values = runs.get(run, {}).get(metric)
    if "total_min" in check and run in runs:
        total = sum(v for _, v in values or [])
        return [Row(label, run, metric, total, f"sum >= {check['total_min']}", total >= float(check["total_min"]))]
    if not values:
        return [Row(label, run, metric, None, "metric missing", False)]
    last = window_mean(values, window)
    rows = []
    if check.get("all_finite"):
        bad = [step for step, v in values if not math.isfinite(v)]
        rows.append(Row(label, run, metric, float(len(bad)), "every value finite", not bad))
    if "at_least" in check:
        other = runs[run].get(str(check["at_least"]))
        diff = last - window_mean(other, window) if other else math.nan
        margin = float(check.get("margin", 0.0))
        rows.append(Row(label, run, metric, diff, f"- {check['at_least']} >= {-margin:g}", diff >= -margin))
    finite = math.isfinite(last)
    if "min" in check:
        rows.append(Row(label, run, metric, last, f">= {check['min']}", finite and last >= float(check["min"])))
    if "max" in check:
        rows.append(Row(label, run, metric, last, f"<= {check['max']}", finite and last <= float(check["max"])))
    if "improve" in check:
        gain = last - window_mean(values, window, first=True)
        ok = math.isfinite(gain) and gain >= float(check["improve"]) and len(values) > window
        rows.append(Row(label, run, metric, gain, f"last-first >= {check['improve']}", ok))
    if not rows:
        rows.append(Row(label, run, metric, last, "finite", finite))
    return rows


def _compare(
    label: str, metric: str, spec: Mapping[str, Any], runs: Mapping[str, Mapping[str, Series]], window: int
) -> Row:
    a, b, margin = str(spec["run"]), str(spec["than"]), float(spec.get("margin", 0.0))
    sides = []
    for pattern in (a, b):
        series = [runs[n].get(metric) for n in sorted(fnmatch.filter(list(runs), pattern))]
        if not series or not all(series):
            return Row(label, f"{a}-{b}", metric, None, "metric missing", False)
        sides.append(sum(window_mean(v, window) for v in series) / len(series))  # mean over seeds
    diff = sides[0] - sides[1]
    return Row(label, f"{a}-{b}", metric, diff, f">= {-margin:g}", math.isfinite(diff) and diff >= -margin)


def render(rows: Sequence[Row]) -> str:
    head = ("check", "run", "value", "threshold", "status")
    cells = [
        (r.check, r.run, "-" if r.value is None else f"{r.value:.4f}", r.bound, "ok" if r.ok else "FAIL") for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]

    def line(c: Sequence[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(c, widths, strict=True)).rstrip()

    failed = sum(not r.ok for r in rows)
    out = [line(head), line(tuple("-" * w for w in widths)), *map(line, cells)]
    out.append(f"{'FAIL' if failed else 'OK'}: {failed} of {len(rows)} check(s) failed")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="NAME=FILE", help="a run's metrics JSONL")
    p.add_argument("--thresholds", default="ci/thresholds.yaml")
    args = p.parse_args(argv)
    try:
        runs = {}
        for spec in args.run:
            name, sep, path = spec.partition("=")
            if not sep:
                p.error(f"--run expects NAME=FILE, got {spec!r}")
            runs[name] = load_metrics(path)
        with open(args.thresholds, encoding="utf-8") as f:
            thresholds = yaml.safe_load(f) or {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"check_results: {e}", file=sys.stderr)
        return 2
    rows = evaluate(thresholds, runs)
    print(render(rows))
    return 1 if any(not r.ok for r in rows) or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
