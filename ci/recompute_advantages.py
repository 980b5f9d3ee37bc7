"""Exact check of real training steps: recompute the GDPO advantages with an independent float64 reference and
compare them with what verl trained on.

    python ci/recompute_advantages.py --dump ci-out/exact/rollouts --tap ci-out/exact/tap [--tol 1e-6]

``--tap`` is what ci/advantage_tap.py recorded in the run (``{call}.jsonl``: GDPO settings, then per row the group,
length, KL shaping, the reward components the estimator received and the advantage verl trained on). ``--dump`` is
verl's ``trainer.rollout_data_dir`` (``{step}.jsonl``): where it holds the reward components (legacy trainer) they
must equal the tapped ones row by row; on the V1 trainer (scores only) its row count must be reachable (the tap may
also hold the synthetic rows V1 pads a batch with). The advantages are recomputed by ci/reference_gdpo.py, which
shares no code with gdpo_verl (no gdpo_verl or torch import here), and must match to ``--tol``. Also checked: every
group holds one prompt (legacy dump), every response's tokens share one advantage.
Exit 0 when all match, 1 on a mismatch, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_gdpo import Unsupported, advantages  # noqa: E402


class InputError(ValueError):
    pass


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: {e}") from None


def _value(row: dict[str, Any], key: str) -> float | None:
    v = row[key]
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _same(a: float | None, b: float | None, tol: float) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)


def check_step(dump_rows: list[dict[str, Any]], tap_rows: list[dict[str, Any]], where: str, tol: float) -> list[str]:
    """Problems found in one step (empty when the advantages match)."""
    settings = tap_rows[0]["gdpo"]
    keys = list(settings["reward_keys"])
    rows = tap_rows[1:]
    problems = []
    if any("components" not in r for r in rows):
        raise InputError(f"{where}: the tap has no reward components (recorded by an older ci/advantage_tap.py)")
    comps = [r["components"] for r in rows]
    with_components = bool(dump_rows) and all(k in dump_rows[0] for k in keys)
    if with_components:
        if len(rows) != len(dump_rows):
            raise InputError(f"{where}: the dump has {len(dump_rows)} responses, the tap {len(rows)}")
        prompts: dict[Any, set[str]] = {}
        for r, d in zip(rows, dump_rows, strict=True):
            prompts.setdefault(r["group"], set()).add(str(d.get("input")))
        mixed = [g for g, p in prompts.items() if len(p) > 1]
        if mixed:
            problems.append(f"{where}: {len(mixed)} group(s) mix different prompts (e.g. group {mixed[0]})")
        differ = [
            i
            for i, d in enumerate(dump_rows)
            if not all(_same(_value(d, k), c, 1e-6) for k, c in zip(keys, comps[i], strict=True))
        ]
        if differ:
            problems.append(
                f"{where}: the estimator received other reward components than verl dumped for {len(differ)} "
                f"row(s) (first: row {differ[0]})"
            )
    elif len(dump_rows) > len(rows):
        raise InputError(f"{where}: the dump has {len(dump_rows)} responses, more than the {len(rows)} tapped")
    kl = [r["kl"] for r in rows] if settings.get("use_kl_in_reward") else None
    try:
        expected = advantages(comps, [r["group"] for r in rows], [float(r["length"]) for r in rows], settings, kl)
    except Unsupported as e:
        raise InputError(f"{where}: {e}") from None
    diffs = [abs(e - float(r["advantage"])) for e, r in zip(expected, rows, strict=True)]
    worst = max(range(len(diffs)), key=diffs.__getitem__) if diffs else 0
    if diffs and diffs[worst] > tol:
        problems.append(
            f"{where}: {sum(d > tol for d in diffs)} of {len(rows)} advantages differ by more than {tol:g} "
            f"(worst row {worst}: trained {float(rows[worst]['advantage']):.8f}, reference {expected[worst]:.8f})"
        )
    spread = max((float(r.get("spread", 0.0)) for r in rows), default=0.0)
    if spread > tol:
        problems.append(f"{where}: a response's tokens carry different advantages (spread {spread:g})")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dump", required=True, help="verl's trainer.rollout_data_dir")
    p.add_argument("--tap", required=True, help="GDPO_CI_TAP_DIR of the same run")
    p.add_argument("--tol", type=float, default=1e-6)
    args = p.parse_args(argv)
    taps = sorted(Path(args.tap).glob("*.jsonl"), key=lambda f: int(f.stem) if f.stem.isdigit() else -1)
    try:
        if not taps:
            raise InputError(f"{args.tap}: no tapped estimator call (was GDPO_CI_TAP_DIR set in the run?)")
        problems, rows = [], 0
        for tap in taps:
            dump = Path(args.dump) / f"{tap.stem}.jsonl"
            if not dump.is_file():
                raise InputError(f"{dump}: missing (the rollout dump of step {tap.stem})")
            dump_rows = _jsonl(dump)
            problems += check_step(dump_rows, _jsonl(tap), f"step {tap.stem}", args.tol)
            rows += len(dump_rows)
    except (InputError, TypeError, KeyError) as e:
        print(f"recompute_advantages: {e}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"MISMATCH {line}")
    verdict = "FAIL" if problems else "OK"
    print(f"{verdict}: {len(taps)} step(s), {rows} responses, advantages recomputed by the reference to {args.tol:g}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
