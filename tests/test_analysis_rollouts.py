"""`gdpo-verl analyze rollouts` on small dumps in verl's `{step}.jsonl` format (legacy and V1 trainers) and parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from gdpo_verl.analysis.rollouts import analyze_rollouts, prepare, step_report
from gdpo_verl.cli import main
from gdpo_verl.core import gdpo_advantages, group_index
from gdpo_verl.metrics import collapse_metrics

# Group p0: sums (1,1,1,0) -> GRPO 2 distinct values; GDPO (0.366, 0.366, 0.634, -1.366) -> 3: collapsed.
# Group p1: acc all 1 (zero variance), format varies -> not collapsed. Group p2: one format value missing (GRPO sums
# it as 0: 3 distinct; GDPO leaves it out of format's statistics: 4 distinct) -> collapsed.
GROUPS = {
    "p0": [(1, 0), (1, 0), (0, 1), (0, 0)],
    "p1": [(1, 0), (1, 1), (1, 0), (1, 1)],
    "p2": [(0, 0), (1, None), (1, 1), (0, 1)],
}


def write_legacy_dump(root: Path, steps=(1, 2)) -> Path:
    """Like RayPPOTrainer._write_generations: input/output/gts/score/step + reward_extra_info keys, no uid."""
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        with (root / f"{step}.jsonl").open("w") as f:
            for prompt, rows in GROUPS.items():
                for acc, fmt in rows:
                    score = acc + (fmt or 0)
                    entry = {"input": prompt, "output": "o", "gts": "1", "score": score, "step": step}
                    f.write(json.dumps(entry | {"acc": acc, "format": fmt}) + "\n")
    return root


def test_legacy_dump_groups_by_prompt_text(tmp_path):
    reports, keys, notes = analyze_rollouts(write_legacy_dump(tmp_path / "dump"))
    assert keys == ["acc", "format"]
    assert any("'input'" in n for n in notes)
    assert [r["step"] for r in reports] == [1, 2]
    rep = reports[0]
    assert (rep["samples"], rep["groups"], rep["collapsed"]) == (12, 3, 2)
    assert rep["zero_var_frac"] == {"acc": pytest.approx(1 / 3), "format": 0.0}
    assert rep["missing"] == {"acc": 0, "format": 1}


def test_collapse_count_matches_training_metric():
    rows = [r for g in GROUPS.values() for r in g]
    r = torch.tensor([[a, float("nan") if f is None else f] for a, f in rows], dtype=torch.float64)
    gid, _ = group_index([p for p, g in GROUPS.items() for _ in g])
    w = torch.ones(2, dtype=torch.float64)
    expected = collapse_metrics(gdpo_advantages(r, gid, batch_norm="none"), w, 1e-6)
    df = pd.DataFrame({"uid": [p for p, g in GROUPS.items() for _ in g], "acc": r[:, 0], "format": r[:, 1]})
    reports, _, _ = _analyze_frame(df)
    assert reports[0]["collapsed_frac"] == pytest.approx(expected["gdpo/collapse/grpo_collapsed_frac"])
    assert reports[0]["distinct_gdpo"] == pytest.approx(expected["gdpo/collapse/distinct_gdpo"])
    assert reports[0]["distinct_grpo"] == pytest.approx(expected["gdpo/collapse/distinct_grpo"])


def _analyze_frame(df: pd.DataFrame):
    frame, keys, notes = prepare(df, None, "uid", "step", False)
    return [step_report(p, keys, [1.0] * len(keys), 1e-6) for _, p in frame.groupby("_step")], keys, notes


def test_v1_dump_keeps_each_sessions_final_output(tmp_path):
    # V1 trainer: uid = {uid}_{session}_{output}, only `score`; the final output (highest index) of a session counts.
    root = tmp_path / "v1"
    root.mkdir()
    lines = []
    for session, (first, final) in enumerate([(1, 0), (1, 1), (0, 1)]):
        lines.append({"uid": f"a-b_{session}_0", "score": first})
        lines.append({"uid": f"a-b_{session}_1", "score": final})
    (root / "3.jsonl").write_text("".join(json.dumps(x | {"input": "q", "step": 3}) + "\n" for x in lines))
    reports, keys, notes = analyze_rollouts(root)
    assert keys == ["score"]
    assert reports[0]["samples"] == 3 and reports[0]["groups"] == 1
    assert reports[0]["distinct_gdpo"] == 2  # finals (0, 1, 1)
    assert any("final output" in n for n in notes)


def test_parquet_with_group_column_and_weights(tmp_path, capsys):
    df = pd.DataFrame({"gid": [0, 0, 1, 1], "it": [5, 5, 5, 5], "a": [1.0, 0.0, 1.0, 1.0], "b": [0.0, 1.0, 0, 1]})
    path = tmp_path / "r.parquet"
    df.to_parquet(path)
    argv = ["analyze", "rollouts", str(path), "--group-col", "gid", "--step-col", "it", "--keys", "a,b", "--json"]
    assert main(argv + ["--weights", "1,2"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["step"] == 5 and rep["groups"] == 2 and rep["zero_var_frac"] == {"a": 0.5, "b": 0.0}


def test_table_output(tmp_path, capsys):
    assert main(["analyze", "rollouts", str(write_legacy_dump(tmp_path / "d", steps=(7,)))]) == 0
    out = capsys.readouterr()
    assert "collapsed" in out.out and "acc zero-var" in out.out and "format missing" in out.out
    assert "grouped by the prompt text" in out.err


@pytest.mark.parametrize(
    "setup,extra,message",
    [
        (lambda d: d, [], "no such file"),
        (lambda d: write_legacy_dump(d), ["--group-col", "gid"], "no group column 'gid'"),
        (lambda d: write_legacy_dump(d), ["--keys", "acc,length"], "unknown reward key"),
        (lambda d: _write(d, '{"uid": "u", "acc": "high"}\n'), ["--keys", "acc"], "non-numeric"),
        (lambda d: _write(d, '{"uid": "u", "acc": 1}\n{oops\n'), [], "not valid JSON"),
        (lambda d: _write(d, '{"acc": 1}\n'), [], "no group column 'uid'"),
        (lambda d: write_legacy_dump(d), ["--weights", "1"], "1 weights for 2"),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path, capsys, setup, extra, message):
    path = setup(tmp_path / "in")
    assert main(["analyze", "rollouts", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _write(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    (root / "1.jsonl").write_text(text)
    return root
