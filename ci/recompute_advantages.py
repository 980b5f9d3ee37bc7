#!/usr/bin/env python3
"""Exact check of one real training step: recompute GDPO advantages from verl's rollout dump and compare.

    python ci/recompute_advantages.py --dump ci-out/exact/rollouts --tap ci-out/exact/tap [--tol 1e-6]

``--dump`` is verl's ``trainer.rollout_data_dir`` (``{step}.jsonl``, one line per response with input, output, score
and, on the legacy trainer, every reward component the reward manager emitted). ``--tap`` is what
ci/advantage_tap.py recorded in the same run (``{call}.jsonl``: GDPO settings, then per row the group, length, KL
shaping and the advantage verl trained on). For each tapped step the components are taken from the dump, the
advantages are recomputed with gdpo_verl's GDPO (``gdpo_verl.estimator.compute_gdpo`` on ``gdpo_verl.core``) and
must match to ``--tol``. Also checked: every group holds one prompt, every response's tokens share one advantage.
Exit 0 when all match, 1 on a mismatch, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from gdpo_verl.conditions import Condition
from gdpo_verl.config import GDPOConfig
from gdpo_verl.estimator import compute_gdpo


class InputError(ValueError):
    pass


def _jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: {e}") from None


def config_from_tap(header: dict[str, Any]) -> GDPOConfig:
    raw = dict(header)
    raw["conditions"] = tuple(Condition(**c) for c in raw.get("conditions", []))
    for key in ("reward_keys", "weights", "std_norm", "weight_schedule"):
        raw[key] = tuple(raw.get(key, ()))
    raw["aggregation_args"] = tuple(tuple(pair) for pair in raw.get("aggregation_args", ()))
    return GDPOConfig(**raw)


def _value(row: dict[str, Any], key: str, where: str) -> float:
    if key not in row:
        raise InputError(f"{where}: reward component {key!r} is not in the dump (keys: {sorted(row)})")
    v = row[key]
    return math.nan if v is None else float(v)


def check_step(dump_rows: list[dict[str, Any]], tap_rows: list[dict[str, Any]], where: str, tol: float) -> list[str]:
    """Problems found in one step (empty when the advantages match)."""
    cfg = config_from_tap(tap_rows[0]["gdpo"])
    rows = tap_rows[1:]
    if len(rows) != len(dump_rows):
        raise InputError(f"{where}: the dump has {len(dump_rows)} responses, the tap {len(rows)}")
    problems = []
    prompts: dict[int, set[str]] = {}
    for r, d in zip(rows, dump_rows, strict=True):
        prompts.setdefault(int(r["group"]), set()).add(str(d.get("input")))
    mixed = [g for g, p in prompts.items() if len(p) > 1]
    if mixed:
        problems.append(f"{where}: {len(mixed)} group(s) mix different prompts (e.g. group {mixed[0]})")
    comps = torch.tensor(
        [[_value(d, k, f"{where} row {i}") for k in cfg.reward_keys] for i, d in enumerate(dump_rows)],
        dtype=torch.float64,
    )
    labels = torch.tensor([int(r["group"]) for r in rows])
    lengths = torch.tensor([float(r["length"]) for r in rows], dtype=torch.float64)
    kl = None
    if cfg.use_kl_in_reward:
        kl = torch.tensor([math.nan if r["kl"] is None else float(r["kl"]) for r in rows], dtype=torch.float64)
    expected, _ = compute_gdpo(comps, labels, lengths, cfg, kl)
    trained = torch.tensor([float(r["advantage"]) for r in rows], dtype=torch.float64)
    diff = (expected - trained).abs()
    worst = int(diff.argmax())
    if float(diff[worst]) > tol:
        problems.append(
            f"{where}: {int((diff > tol).sum())} of {len(rows)} advantages differ by more than {tol:g} "
            f"(worst row {worst}: trained {float(trained[worst]):.8f}, recomputed {float(expected[worst]):.8f})"
        )
    spread = max(float(r.get("spread", 0.0)) for r in rows)
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
    print(f"{verdict}: {len(taps)} step(s), {rows} responses, advantages recomputed to {args.tol:g}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
