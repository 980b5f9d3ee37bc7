"""`gdpo-verl analyze curves`: verl file-logger JSONL (and flat lines), directories, the PNG, the last-step table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdpo_verl.analysis.curves import compare, load_metrics
from gdpo_verl.cli import main


def write_run(path: Path, steps: int, slope: float, nested: bool = True) -> Path:
    """nested: like verl's FileLogger, {"step": s, "data": {...}}; else flat {"step": s, metric: value}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for s in range(1, steps + 1):
            data = {"gdpo/acc/mean": slope * s, "gdpo/format/mean": 0.5, "gdpo/batch/mean": 0.0, "note": "x"}
            f.write(json.dumps({"step": s, "data": data} if nested else {"step": s, **data}) + "\n")
    return path


def test_reads_verl_file_logger_and_flat_lines(tmp_path):
    a = load_metrics(write_run(tmp_path / "a.jsonl", 3, 0.1))
    b = load_metrics(write_run(tmp_path / "b.jsonl", 3, 0.1, nested=False))
    assert a == b and a["gdpo/acc/mean"][3] == pytest.approx(0.3) and "note" not in a
    keys, _, _ = compare(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert keys == ["acc", "format"]  # batch/collapse figures are not rewards


def test_default_keys_are_the_ones_both_runs_have(tmp_path):
    write_run(tmp_path / "gdpo.jsonl", 2, 0.1)
    # a GRPO run logs every numeric reward extra, here one more than GDPO used
    rows = [{"step": 1, "data": {"gdpo/acc/mean": 0.1, "gdpo/format/mean": 0.5, "gdpo/len/mean": 9.0}}]
    (tmp_path / "grpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys, _, _ = compare(tmp_path / "gdpo.jsonl", tmp_path / "grpo.jsonl")
    assert keys == ["acc", "format"]


def test_cli_writes_png_and_last_step_table(tmp_path, capsys):
    write_run(tmp_path / "gdpo" / "metrics.jsonl", 5, 0.1)
    write_run(tmp_path / "grpo" / "exp.jsonl", 4, 0.05)  # a directory with one .jsonl file
    out = tmp_path / "curves.png"
    assert main(["analyze", "curves", str(tmp_path / "gdpo"), str(tmp_path / "grpo"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[4:]}
    assert rows["acc"] == ["5", "0.5", "4", "0.2"]


@pytest.mark.parametrize(
    "make,extra,message",
    [
        (lambda d: (d / "a.jsonl", d / "none.jsonl"), [], "no such file"),
        (lambda d: (d / "a.jsonl", d / "a.jsonl"), ["--keys", "length"], "unknown key"),
        (lambda d: (d / "a.jsonl", d / "bad.jsonl"), [], "not valid JSON"),
        (lambda d: (d / "a.jsonl", d), [], "several .jsonl files"),
        (lambda d: (d / "a.jsonl", d / "grpo.jsonl"), [], "run B ("),
        (lambda d: (d / "grpo.jsonl", d / "a.jsonl"), ["--keys", "acc"], "has no gdpo/<key>/mean for ['acc']"),
    ],
)
def test_bad_input_exits_2(tmp_path, capsys, make, extra, message):
    write_run(tmp_path / "a.jsonl", 2, 0.1)
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n')
    (tmp_path / "grpo.jsonl").write_text('{"step": 1, "data": {"critic/score/mean": 0.5}}\n')  # no per-reward figures
    a, b = make(tmp_path)
    assert main(["analyze", "curves", str(a), str(b), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
