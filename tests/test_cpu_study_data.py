"""docs/cpu-study.md quotes its tables from the committed per-run, per-step data (docs/data/<study>/curves.csv), so
the text cannot drift from the numbers: every table `gdpo-verl analyze study <curves.csv> --markdown` prints appears
in the doc verbatim, and each study has every arm on every seed for the whole run."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdpo_verl.analysis import study

DOCS = Path(__file__).resolve().parents[1] / "docs"
# study folder -> (arms, seeds, steps) as run (docs/cpu-study.md, "What was run" and "Protocol")
STUDIES = {
    "cpu_study_find_digit": (["gdpo", "gdpo_cond", "grpo"], [0, 1, 2], 200),
    "cpu_study_two_binary": (["conflict", "cv", "gdpo", "gdpo_cond", "grpo", "saturation"], [0, 1, 2, 3, 4], 25),
}


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_arm_ran_every_seed_to_the_end(name):
    arms, seeds, steps = STUDIES[name]
    runs = study.read_curves(DOCS / "data" / name / "curves.csv")
    assert sorted(runs) == arms
    for arm, by_seed in runs.items():
        assert sorted(by_seed) == seeds, arm
        for seed, curves in by_seed.items():
            assert sorted(curves["score"]) == list(range(1, steps + 1)), (arm, seed)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_the_doc_quotes_the_tables_of_the_committed_data(name):
    runs = study.read_curves(DOCS / "data" / name / "curves.csv")
    tables = study.markdown(study.summarize(runs, 5), "grpo").strip().split("\n\n")
    doc = (DOCS / "cpu-study.md").read_text(encoding="utf-8")
    assert len(tables) == 2
    for table in tables:
        assert table in doc, f"docs/cpu-study.md does not quote this table of {name}:\n{table}"


def test_the_quoted_run_to_run_difference_is_the_datas():
    study_run = study.read_curves(DOCS / "data" / "cpu_study_two_binary" / "curves.csv")["gdpo"][0]["digit"]
    repeat = study.read_curves(DOCS / "data" / "cpu_study_two_binary_repeat" / "curves.csv")["gdpo_repeat"][0]["digit"]
    a, b = (study.window_mean(c, first=False, frac=1.0) for c in (study_run, repeat))
    doc = " ".join((DOCS / "cpu-study.md").read_text(encoding="utf-8").split())
    assert f"was {b:.3f} against {a:.3f} in the study's run: a difference of {abs(a - b):.3f}" in doc
