"""`gdpo-verl analyze distinct`: paper fixtures, a brute-force reference, both exact GDPO methods, the CLI."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from gdpo_verl.analysis.distinct import (
    count_distinct,
    count_gdpo_columns,
    count_gdpo_rows,
    count_grpo,
    multiset_chunks,
    multisets,
)
from gdpo_verl.cli import main

R2 = math.sqrt(2.0)


def _z(xs: list[float], std: bool = True) -> list[float]:
    if max(xs) - min(xs) < 1e-12:
        return [0.0] * len(xs)
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if std else 1.0
    return [(x - m) / s for x in xs]


def brute_force(n: int, g: int) -> dict[str, set[tuple[float, ...]]]:
    """Every multiset of g reward vectors in {0,1}^n, loop by loop, straight from the spec's definition."""
    out: dict[str, set[tuple[float, ...]]] = {"grpo": set(), "grpo_no_std": set(), "gdpo": set()}

    def key(adv: list[float]) -> tuple[float, ...]:
        return tuple(round(a, 6) + 0.0 for a in sorted(adv))

    for group in itertools.combinations_with_replacement(list(itertools.product((0, 1), repeat=n)), g):
        sums = [float(sum(r)) for r in group]
        out["grpo"].add(key(_z(sums)))
        out["grpo_no_std"].add(key(_z(sums, std=False)))
        cols = [_z([float(r[k]) for r in group]) for k in range(n)]
        out["gdpo"].add(key([sum(c[j] for c in cols) for j in range(g)]))
    return out


def test_paper_fixture_two_rewards_two_rollouts():
    ref = brute_force(2, 2)
    h = round(1 / R2, 6)
    assert ref["grpo"] == {(0.0, 0.0), (-h, h)}
    assert ref["grpo_no_std"] == {(0.0, 0.0), (-0.5, 0.5), (-1.0, 1.0)}
    assert ref["gdpo"] == {(0.0, 0.0), (-h, h), (-round(R2, 6), round(R2, 6))}
    assert count_distinct([(2, 2)])[0] == {
        "rewards": 2, "rollouts": 2, "grpo": 2, "grpo_no_std": 3, "gdpo": 3, "method": "rows"
    }  # fmt: skip


@pytest.mark.parametrize("n,g", [(1, 3), (2, 3), (2, 4), (2, 6), (3, 3), (3, 4), (4, 2), (4, 3), (2, 7)])
def test_matches_brute_force(n, g):
    ref = {k: len(v) for k, v in brute_force(n, g).items()}
    assert count_grpo(n, g) == {"grpo": ref["grpo"], "grpo_no_std": ref["grpo_no_std"]}
    assert count_gdpo_rows(n, g) == ref["gdpo"]
    assert count_gdpo_columns(g, n)[n - 1] == ref["gdpo"]


@pytest.mark.parametrize("g,n_max", [(4, 5), (5, 3), (6, 2), (3, 6)])
def test_columns_method_agrees_with_rows(g, n_max):
    assert count_gdpo_columns(g, n_max) == [count_gdpo_rows(n, g) for n in range(1, n_max + 1)]


def test_rows_method_in_chunks_gives_the_same_count(monkeypatch):
    import gdpo_verl.analysis.distinct as distinct

    monkeypatch.setattr(distinct, "CHUNK", 60)  # ~5 groups per chunk
    assert count_gdpo_rows(2, 6) == len(brute_force(2, 6)["gdpo"])


def test_multisets_are_all_non_decreasing_tuples():
    got = multisets(4, 3).tolist()
    assert got == [list(t) for t in itertools.combinations_with_replacement(range(4), 3)]
    assert len(got) == math.comb(4 + 3 - 1, 3)
    chunks = list(multiset_chunks(6, 4, limit=7))  # split on leading indices, same order
    assert len(chunks) > 1 and torch.cat(chunks).tolist() == multisets(6, 4).tolist()


def test_paper_figure_end_points_are_exact_and_fast():
    # N=2, G=16 (969 multisets) and G=4, N=8 (C(259,4) ~ 1.83e8 multisets, counted via the columns recursion)
    got = {(r["rewards"], r["rollouts"]): r for r in count_distinct([(2, 16), (8, 4)])}
    assert [got[(2, 16)][k] for k in ("grpo", "grpo_no_std", "gdpo")] == [121, 136, 497]
    assert [got[(8, 4)][k] for k in ("grpo", "grpo_no_std", "gdpo")] == [119, 165, 2929]
    assert got[(8, 4)]["method"] == "columns"


def test_gdpo_never_below_grpo_on_a_grid():
    for r in count_distinct([(n, g) for n in (2, 3) for g in (2, 3, 4, 5)]):
        assert r["gdpo"] >= r["grpo_no_std"] >= r["grpo"]


def test_cli_json_ranges(capsys):
    assert main(["analyze", "distinct", "--rewards", "2", "--rollouts", "2-4", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["rollouts"], x["grpo"], x["grpo_no_std"], x["gdpo"]) for x in lines] == [
        (2, 2, 3, 3), (3, 4, 6, 6), (4, 7, 10, 14)
    ]  # fmt: skip
    assert set(lines[0]) == {"rewards", "rollouts", "grpo", "grpo_no_std", "gdpo"}


def test_cli_table_and_plot(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert main(["analyze", "distinct", "--rewards", "2-3", "--rollouts", "2-4", "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "GRPO w/o std" in text and len(text.splitlines()) == 2 + 6
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["--rewards", "2"],  # --rollouts missing
        ["--rewards", "x", "--rollouts", "2"],
        ["--rewards", "2", "--rollouts", "1"],  # a group needs 2 rollouts
        ["--rewards", "2", "--rollouts", "2", "--plot", "f.png"],  # one point: nothing to plot
        ["--rewards", "8", "--rollouts", "16"],  # no exact method fits: refused, not estimated
    ],
)
def test_cli_bad_input_exits_2(argv, capsys):
    assert main(["analyze", "distinct", *argv]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
