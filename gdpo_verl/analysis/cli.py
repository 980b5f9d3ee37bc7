"""`gdpo-verl analyze {distinct,rollouts,curves,study}`: collapse diagnostics. Bad input exits 2 with one error line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from gdpo_verl.analysis.common import AnalysisError, parse_range, table

# (N, G) pairs of the paper's Fig. 3: N=2 over G=2..16 and G=4 over N=2..8
PAPER_GRID = [(2, g) for g in range(2, 17)] + [(n, 4) for n in range(3, 9)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="analysis", metavar="ANALYSIS")
    d = sub.add_parser("distinct", help="count distinct advantage groups (paper Fig. 3), exactly")
    d.add_argument("--rewards", help="N binary rewards: 3, 2-6 or 2,4 (default: the paper's grid)")
    d.add_argument("--rollouts", help="G rollouts per group: 4, 2-16 or 2,4 (default: the paper's grid)")
    d.add_argument("--method", choices=("auto", "rows", "columns"), default="auto", help="GDPO enumeration")
    d.add_argument("--json", action="store_true", help="one JSON object per (N, G) per line")
    d.add_argument("--plot", metavar="FILE.png", help="write the figure (counts vs G and vs N)")

    r = sub.add_parser("rollouts", help="per-step collapse report for verl's dumped rollouts or a parquet/JSONL")
    r.add_argument("path", help="trainer.rollout_data_dir, or one .jsonl/.parquet file")
    r.add_argument("--keys", help="reward columns, comma-separated (default: every numeric non-verl column)")
    r.add_argument("--weights", help="reward weights, comma-separated (default: all 1)")
    r.add_argument("--group-col", help="group id column (default: uid, else the prompt text 'input')")
    r.add_argument("--step-col", default="step", help="step column (default: step, else the file names)")
    r.add_argument("--eps", type=float, default=1e-6, help="epsilon of the group std (default 1e-6, as training)")
    r.add_argument("--json", action="store_true", help="one JSON object per step per line")

    c = sub.add_parser("curves", help="per-reward curves of two runs from their metrics JSONL")
    c.add_argument("run_a", help="metrics .jsonl (verl file logger) or a directory holding it")
    c.add_argument("run_b", help="metrics .jsonl (verl file logger) or a directory holding it")
    c.add_argument("--keys", help="reward keys, comma-separated (default: every gdpo/<key>/<stat> found)")
    c.add_argument("--stat", default="mean", help="which gdpo/<key>/<stat> to plot (default: mean)")
    c.add_argument("--out", metavar="FILE.png", help="write the figure here")

    st = sub.add_parser("study", help="arms over seeds of a quickstart task (scripts/cpu_study.sh)")
    st.add_argument("root", help="folder with <arm>/seed<k>/ quickstart runs, or the curves.csv that --data wrote")
    st.add_argument(
        "--baseline", default="grpo", help="arm the others are compared with seed by seed (default grpo; if present)"
    )
    st.add_argument("--smooth", type=int, default=5, help="trailing moving average per run, in steps (default 5)")
    st.add_argument("--out", metavar="FILE.png", help="write the figure (median and min-max band per reward)")
    st.add_argument("--json", metavar="FILE.json", help="write the medians, bands and per-seed values")
    st.add_argument("--markdown", action="store_true", help="print the tables as Markdown instead of plain text")
    st.add_argument(
        "--data",
        metavar="DIR",
        help="write the per-run, per-step numbers: DIR/curves.csv (what the tables come from) and DIR/metrics.csv",
    )


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def run_distinct(args: argparse.Namespace) -> int:
    from gdpo_verl.analysis.distinct import count_distinct

    if (args.rewards is None) != (args.rollouts is None):
        raise AnalysisError("give both --rewards and --rollouts, or neither for the paper's grid")
    if args.rewards is None:
        pairs = PAPER_GRID
    else:
        ns, gs = parse_range(args.rewards, "--rewards"), parse_range(args.rollouts, "--rollouts", lo=2)
        pairs = [(n, g) for n in ns for g in gs]
    rows = []
    for pair in pairs:
        start = time.perf_counter()
        row = count_distinct([pair], args.method)[0]
        row["seconds"] = round(time.perf_counter() - start, 3)
        rows.append(row)
        if args.json:
            print(json.dumps({k: row[k] for k in ("rewards", "rollouts", "grpo", "grpo_no_std", "gdpo")}), flush=True)
    if not args.json:
        cols = ("rewards", "rollouts", "grpo", "grpo_no_std", "gdpo", "method", "seconds")
        header = ["N", "G", "GRPO", "GRPO w/o std", "GDPO", "method", "seconds"]
        print(table(header, [[r[c] for c in cols] for r in rows]), flush=True)
    if args.plot:
        from gdpo_verl.analysis.figure import plot_distinct

        plot_distinct(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def run_rollouts(args: argparse.Namespace) -> int:
    from gdpo_verl.analysis.rollouts import analyze_rollouts

    weights = _split(args.weights)
    try:
        w = [float(x) for x in weights] if weights else None
    except ValueError:
        raise AnalysisError(f"--weights: expected numbers, got {args.weights!r}") from None
    reports, keys, notes = analyze_rollouts(
        args.path, _split(args.keys), args.group_col or "uid", args.step_col, w, args.eps, args.group_col is not None
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        for rep in reports:
            print(json.dumps(rep))
        return 0
    header = ["step", "samples", "groups", "collapsed", "distinct GDPO", "distinct GRPO"]
    header += [f"{k} zero-var" for k in keys] + [f"{k} missing" for k in keys]
    rows = [
        [rep["step"], rep["samples"], rep["groups"], f"{rep['collapsed']} ({rep['collapsed_frac']:.0%})"]
        + [rep["distinct_gdpo"], rep["distinct_grpo"]]
        + [rep["zero_var_frac"][k] for k in keys]
        + [rep["missing"][k] for k in keys]
        for rep in reports
    ]
    print(table(header, rows), flush=True)
    return 0


def run_curves(args: argparse.Namespace) -> int:
    from gdpo_verl.analysis.curves import compare, last, plot

    keys, a, b = compare(args.run_a, args.run_b, _split(args.keys), args.stat)
    names = (f"A: {args.run_a}", f"B: {args.run_b}")
    if args.out:
        plot(keys, dict(zip(names, (a, b), strict=True)), args.out, args.stat)
        print(f"wrote {args.out}", file=sys.stderr)
    rows = []
    for key in keys:
        (sa, va), (sb, vb) = last(a.get(f"gdpo/{key}/{args.stat}")), last(b.get(f"gdpo/{key}/{args.stat}"))
        rows.append([key, sa if sa is not None else "-", va, sb if sb is not None else "-", vb])
    print(names[0] + "\n" + names[1])
    print(table([f"key ({args.stat})", "A step", "A last", "B step", "B last"], rows))
    return 0


def _print_study_tables(runs: Mapping, summary: Mapping, baseline: str) -> None:
    from gdpo_verl.analysis import study

    for est, by_seed in runs.items():
        steps = [max(by_seed[s]["score"], default=0) for s in by_seed]
        print(f"{est}: seeds {sorted(by_seed)}, steps {min(steps)}-{max(steps)}")
    header = ["arm", "reward", "first 20% (median)", "last 20% (median)", "all steps (median)", "last 20% per seed"]
    print(table(header, study.table_rows(summary)))
    if baseline in summary and len(summary) > 1:
        for stat, label in (("end", "last 20%"), ("all", "all steps")):
            print(f"\n{label}, arm minus {baseline} on the same seed:")
            header = ["arm", "reward", "seeds", "median difference", "above/below/equal"]
            print(table(header, study.paired(summary, baseline, stat)))


def run_study(args: argparse.Namespace) -> int:
    from gdpo_verl.analysis import study

    if args.smooth < 1:
        raise AnalysisError(f"--smooth must be >= 1, got {args.smooth}")
    if Path(args.root).is_file():  # a curves.csv written by --data
        if args.data:
            raise AnalysisError("--data needs the study's run folders (a curves.csv holds no metrics)")
        found, runs = None, study.read_curves(Path(args.root))
    else:
        found = study.discover(args.root)
        runs = study.load_runs(found)
    summary = study.summarize(runs, args.smooth)
    if args.markdown:
        print(study.markdown(summary, args.baseline), end="")
    else:
        _print_study_tables(runs, summary, args.baseline)
    if args.out:
        study.plot(summary, args.out, args.smooth)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.json:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"smooth": args.smooth, "source": str(args.root), **summary}, f)
        except OSError as e:
            raise AnalysisError(f"cannot write {args.json}: {e}") from None
        print(f"wrote {args.json}", file=sys.stderr)
    if args.data and found is not None:
        out = Path(args.data)
        try:
            out.mkdir(parents=True, exist_ok=True)
            study.write_curves(runs, out / "curves.csv")
            study.write_metrics(found, out / "metrics.csv")
        except OSError as e:
            raise AnalysisError(f"cannot write {out}: {e}") from None
        print(f"wrote {out / 'curves.csv'} and {out / 'metrics.csv'}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    commands = {"distinct": run_distinct, "rollouts": run_rollouts, "curves": run_curves, "study": run_study}
    if args.analysis not in commands:
        print("usage: gdpo-verl analyze {distinct,rollouts,curves,study} ... (see --help)", file=sys.stderr)
        return 2
    try:
        return commands[args.analysis](args)
    except AnalysisError as e:
        print(f"gdpo-verl analyze {args.analysis}: error: {e}", file=sys.stderr)
        return 2
