"""`gdpo-verl analyze study`: per-reward medians and min-max bands over seeds, from quickstart rollout dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdpo_verl.analysis import study
from gdpo_verl.analysis.common import AnalysisError
from gdpo_verl.cli import main


def write_run(root: Path, est: str, seed: int, correct_per_step: list[float], n: int = 10) -> Path:
    """A quickstart-like rollout dump: answer '7' is correct, 'x7' is neither well formatted nor correct."""
    run = root / est / f"seed{seed}"
    (run / "rollouts").mkdir(parents=True)
    for step, frac in enumerate(correct_per_step, 1):
        k = round(frac * n)
        rows = [{"output": "777" if i < k else "xyz", "gts": "7", "score": 0.0, "step": step} for i in range(n)]
        (run / "rollouts" / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_load_run_recomputes_rewards_with_the_task_functions(tmp_path):
    run = write_run(tmp_path, "gdpo", 0, [0.2, 0.5])
    curves = study.load_run(run)
    assert curves["correct"] == pytest.approx({1: 0.2, 2: 0.5})
    assert curves["format"] == pytest.approx({1: 0.2, 2: 0.5})  # '777' is all digits, 'xyz' none


def test_smooth_is_a_trailing_mean_and_band_spans_the_seeds():
    assert study.smooth({1: 0.0, 2: 1.0, 3: 2.0}, 2) == {1: 0.0, 2: 0.5, 3: 1.5}
    assert study.smooth({1: 3.0, 2: 1.0}, 1) == {1: 3.0, 2: 1.0}
    b = study.band([{1: 0.1, 2: 0.5}, {1: 0.3, 2: 0.2, 3: 9.0}, {1: 0.2, 2: 0.4}])
    assert b["steps"] == [1.0, 2.0]  # only steps every run reached
    assert b["median"] == pytest.approx([0.2, 0.4])
    assert b["min"] == pytest.approx([0.1, 0.2]) and b["max"] == pytest.approx([0.3, 0.5])


def test_cli_table_png_and_json(tmp_path, capsys):
    for seed, (a, b) in enumerate([(0.1, 0.9), (0.2, 0.8), (0.0, 0.7)]):
        write_run(tmp_path, "gdpo", seed, [a] * 5 + [b] * 5)
        write_run(tmp_path, "grpo", seed, [a] * 10)
    png, js = tmp_path / "s.png", tmp_path / "s.json"
    assert main(["analyze", "study", str(tmp_path), "--smooth", "3", "--out", str(png), "--json", str(js)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "gdpo: seeds [0, 1, 2], steps 10-10" in out
    cells = [line.split() for line in out.split("arm minus")[0].splitlines()]
    rows = {tuple(c[:2]): c[2:] for c in cells if c and c[0] in ("gdpo", "grpo")}
    assert rows[("gdpo", "correct")][:3] == ["0.1", "0.8", "0.5"]  # medians of the first, last 2 and all steps
    assert rows[("grpo", "correct")][:2] == ["0.1", "0.1"]
    paired = [line.split() for line in out.split("last 20%, arm minus grpo on the same seed")[1].splitlines()]
    assert ["gdpo", "correct", "3", "0.7", "3/0/0"] in paired  # last 20% of each seed minus grpo's, same seed
    every = [line.split() for line in out.split("all steps, arm minus grpo on the same seed")[1].splitlines()]
    assert ["gdpo", "correct", "3", "0.35", "3/0/0"] in every  # mean over all 10 steps minus grpo: (b - a) / 2
    data = json.loads(js.read_text())
    assert data["smooth"] == 3 and data["gdpo"]["seeds"] == [0, 1, 2]
    assert data["gdpo"]["band"]["correct"]["max"][-1] == pytest.approx(0.9)


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(AnalysisError, match="no <estimator>/seed<k>/rollouts"):
        study.discover(tmp_path)
    assert main(["analyze", "study", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    write_run(tmp_path, "gdpo", 0, [])
    with pytest.raises(AnalysisError, match="rollout dump is empty"):
        study.load_run(tmp_path / "gdpo" / "seed0")


def write_metrics_jsonl(run: Path, steps: int) -> None:
    lines = [
        {"step": s, "data": {"gdpo/correct/weight": 0.5 + s, "gdpo/impl": 1, "actor/entropy": 4.0 - s, "critic/x": 1.0}}
        for s in range(1, steps + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_data_files_recompute_the_same_tables(tmp_path, capsys):
    root = tmp_path / "study"
    for seed, (a, b) in enumerate([(0.1, 0.9), (0.2, 0.8), (0.0, 0.7)]):
        write_metrics_jsonl(write_run(root, "gdpo", seed, [a] * 3 + [b] * 2 + [1 / 3]), 6)
        write_metrics_jsonl(write_run(root, "grpo", seed, [a] * 6), 6)
    data = tmp_path / "data"
    assert main(["analyze", "study", str(root), "--data", str(data)]) == 0
    from_runs = capsys.readouterr().out
    assert main(["analyze", "study", str(data / "curves.csv")]) == 0
    assert capsys.readouterr().out == from_runs  # every table, to the last digit
    runs = study.read_curves(data / "curves.csv")
    assert runs["gdpo"][0] == study.load_run(root / "gdpo" / "seed0")  # every value, at full precision
    lines = (data / "metrics.csv").read_text().splitlines()
    assert lines[0] == "arm,seed,step,actor/entropy,gdpo/correct/weight"  # kept metrics only; gdpo/impl is a label
    assert lines[1] == "gdpo,0,1,3.0,1.5" and len(lines) == 1 + 6 * 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("arm,seed,step\n", "not a curves file"),
        ("arm,seed,step,correct\ngdpo,zero,1,0.5\n", r":2: expected arm,int seed,int step"),
        ("arm,seed,step,correct\ngdpo,0,1,0.5,0.2\n", r":2: 2 values for 1 keys"),
        ("arm,seed,step,correct\n", "no rows"),
    ],
)
def test_a_bad_curves_file_is_a_clear_error(tmp_path, text, message):
    bad = tmp_path / "curves.csv"
    bad.write_text(text)
    with pytest.raises(AnalysisError, match=message):
        study.read_curves(bad)


def test_data_needs_the_run_folders(tmp_path, capsys):
    write_metrics_jsonl(write_run(tmp_path / "s", "gdpo", 0, [0.5]), 1)
    assert main(["analyze", "study", str(tmp_path / "s"), "--data", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["analyze", "study", str(tmp_path / "d" / "curves.csv"), "--data", str(tmp_path / "e")]) == 2
    assert "--data needs the study's run folders" in capsys.readouterr().err


def test_markdown_tables(tmp_path, capsys):
    for seed, (a, b) in enumerate([(0.1, 0.9), (0.2, 0.8), (0.0, 0.7)]):
        write_run(tmp_path, "gdpo", seed, [a] * 5 + [b] * 5)
        write_run(tmp_path, "grpo", seed, [a] * 10)
    assert main(["analyze", "study", str(tmp_path), "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| arm | reward | first 20% | last 20% | all steps | last 20%, seeds 0 / 1 / 2 |"
    assert lines[2].startswith("| grpo | ")  # the baseline first
    assert "| gdpo | correct | 0.100 | 0.800 | 0.500 | 0.900 / 0.800 / 0.700 |" in lines
    assert "| arm | reward | all steps | above/below/equal | last 20% | above/below/equal |" in lines
    assert "| gdpo | correct | +0.350 | 3/0/0 | +0.700 | 3/0/0 |" in lines
    assert "| gdpo | format | +0.350 | 3/0/0 | +0.700 | 3/0/0 |" in lines  # "777" is all digits, "xyz" none
