"""Turn the paper's datasets into verl's RL parquet: data_source, prompt (chat list), ability,
reward_model {style, ground_truth}, extra_info {split, index, ...}. Used by scripts/prepare_*.py.

Input: a local .json (a list, or {"data"|"train"|...: list}), .jsonl or .parquet file, or a Hugging Face dataset
name (needs ``datasets`` and access to the hub).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

Row = dict[str, Any]
Converter = Callable[[Mapping[str, Any], int, str], Row | None]  # (record, index, split) -> row, None drops it


def read_records(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, Mapping):
        data = next((data[k] for k in ("data", "train", "test", "records") if isinstance(data.get(k), list)), None)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records")
    return data


def read_hub(name: str, split: str, subset: str | None = None) -> list[dict[str, Any]]:
    from datasets import load_dataset  # optional; needs network access to the hub

    return list(load_dataset(name, subset, split=split))


def make_row(
    data_source: str,
    prompt: list[dict[str, str]],
    ability: str,
    ground_truth: Any,
    split: str,
    index: int,
    **extra: Any,
) -> Row:
    return {
        "data_source": data_source,
        "prompt": prompt,
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {"split": split, "index": index, **extra},
    }


def first(record: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if record.get(k) is not None:
            return record[k]
    return default


def convert(
    records: Iterable[Mapping[str, Any]], converter: Converter, split: str, limit: int | None = None
) -> tuple[list[Row], int]:
    """Rows and the number of records dropped (the converter returned None)."""
    rows, dropped = [], 0
    for i, rec in enumerate(records):
        if limit is not None and len(rows) >= limit:
            break
        row = converter(rec, i, split)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    return rows, dropped


def write_parquet(rows: list[Row], path: str | Path) -> None:
    import pandas as pd

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)


def cli(
    converter: Converter,
    description: str,
    default_hub: str,
    default_subset: str | None = None,
    argv: list[str] | None = None,
) -> int:
    """Shared command line: --input FILE | --hub NAME, --split, --output, --limit."""
    p = argparse.ArgumentParser(description=description)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="local .json / .jsonl / .parquet file")
    src.add_argument(
        "--hub",
        nargs="?",
        const=default_hub or None,
        help=f"Hugging Face dataset (default {default_hub or 'none: give a name'})",
    )
    p.add_argument("--subset", default=default_subset, help="dataset config name on the hub")
    p.add_argument("--split", default="train")
    p.add_argument("--output", required=True, help="output .parquet")
    p.add_argument("--limit", type=int, default=None)
    args = p.parse_args(argv)
    if args.input is None and not args.hub:
        p.error("--hub needs a dataset name here")
    records = read_records(args.input) if args.input else read_hub(args.hub, args.split, args.subset)
    rows, dropped = convert(records, converter, args.split, args.limit)
    write_parquet(rows, args.output)
    print(f"wrote {len(rows)} rows to {args.output} ({dropped} records dropped)")
    return 0
