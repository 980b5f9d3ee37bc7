"""The two_binary quickstart task: two {0, 1} rewards a random model sometimes earns, so GRPO's sum collapses groups;
its wiring into the verl command, the run's reward curves and the study analysis."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gdpo_verl.analysis import study
from gdpo_verl.analysis.common import AnalysisError
from gdpo_verl.quickstart import assets, cli, command, report, task, tasks, two_binary

ASSETS = assets.Assets(Path("/a/model"), Path("/a/train.parquet"), Path("/a/val.parquet"))


@pytest.mark.parametrize(
    ("text", "digit", "letter"),
    [("7", 1.0, 0.0), (" 7 k", 1.0, 1.0), ("k7", 0.0, 0.0), ("kq", 0.0, 1.0), ("", 0.0, 0.0), ("7é", 1.0, 0.0)],
)
def test_rewards_are_binary_and_ignore_the_prompt_digit(text, digit, letter):
    assert two_binary.rewards(text, "3") == {"digit": digit, "letter": letter}
    out = two_binary.compute_score(two_binary.DATA_SOURCE, text, "3", digit_weight=2.0, letter_weight=0.5)
    assert out == {"score": 2.0 * digit + 0.5 * letter, "digit": digit, "letter": letter}


def test_rows_reuse_the_first_tasks_prompts_under_their_own_source():
    rows, first = two_binary.make_rows(4, seed=2, split="train"), task.make_rows(4, seed=2, split="train")
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in first]
    assert {r["data_source"] for r in rows} == {two_binary.DATA_SOURCE}


def test_random_answers_hit_each_reward_alone_so_summed_groups_collapse():
    rng = random.Random(0)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz :"
    seen = {
        (v["digit"], v["letter"])
        for v in (two_binary.rewards("".join(rng.sample(alphabet, 4)), "1") for _ in range(200))
    }
    assert {(1.0, 0.0), (0.0, 1.0)} <= seen  # same sum, different rewards: GRPO ties them


def test_task_registry_and_verl_overrides():
    assert tasks.get("find_digit") is task and tasks.get("two_binary") is two_binary
    with pytest.raises(ValueError, match="unknown quickstart task 'nope'; known: find_digit, two_binary"):
        tasks.get("nope")
    cfg = command.RunConfig(out=Path("/o"), task="two_binary", weights=(2.0, 1.0))
    ov = command.overrides(cfg, ASSETS)
    assert "+algorithm.gdpo_reward_keys=[digit,letter]" in ov
    assert "reward.custom_reward_function.path=pkg://gdpo_verl.quickstart.two_binary" in ov
    assert "+reward.custom_reward_function.reward_kwargs.digit_weight=2.0" in ov
    assert not any("format_weight" in o for o in ov)
    parser = argparse_parser()
    assert parser.parse_args(["--task", "two_binary"]).task == "two_binary"
    assert parser.parse_args([]).task == "find_digit"
    with pytest.raises(SystemExit):
        parser.parse_args(["--task", "nope"])


def argparse_parser():
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser


def test_assets_write_the_tasks_rows(tmp_path):
    built = assets.build(tmp_path, seed=0, n_train=4, n_val=2, task_module=two_binary)
    import pandas as pd

    assert set(pd.read_parquet(built.train_file)["data_source"]) == {two_binary.DATA_SOURCE}


def write_v1_run(root: Path, arm: str, seed: int, outputs_per_step: list[list[list[str]]]) -> Path:
    """A V1 rollout dump of the two_binary task: per step, per prompt group, the outputs; uid = {group}_{i}_0."""
    run = root / arm / f"seed{seed}"
    (run / "rollouts").mkdir(parents=True)
    (run / "command.txt").write_text(
        "python -m verl.trainer.main_ppo reward.custom_reward_function.path=pkg://gdpo_verl.quickstart.two_binary\n"
    )
    for step, groups in enumerate(outputs_per_step, 1):
        rows = [
            {"output": o, "gts": "1", "score": 0.0, "step": step, "uid": f"g{step}x{g}_{i}_0"}
            for g, outs in enumerate(groups)
            for i, o in enumerate(outs)
        ]
        (run / "rollouts" / f"{step}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_study_reads_the_task_from_the_command_and_counts_collapsed_groups(tmp_path):
    # step 1, group 0: "7" (digit only) and "k" (letter only) have the same sum, GDPO tells them apart: collapsed;
    # group 1 is all alike (":" earns neither). Step 2: three different sums, nothing to collapse.
    groups = [[["7", "k", "k", ":"], ["7k"] * 4], [["7", "7k", ":", ":"]]]
    run = write_v1_run(tmp_path, "grpo", 0, groups)
    assert study.task_of(run) == "two_binary"
    curves = study.load_run(run)
    assert list(curves) == ["digit", "letter", "score", "collapsed"]
    assert curves["digit"][1] == pytest.approx(5 / 8) and curves["letter"][1] == pytest.approx(6 / 8)
    assert curves["collapsed"] == pytest.approx({1: 0.5, 2: 0.0})
    assert report.step_rewards(run / "rollouts" / "1.jsonl", two_binary)["digit"] == pytest.approx(5 / 8)


def test_study_compares_arms_seed_by_seed_and_refuses_mixed_tasks(tmp_path):
    for seed, hits in enumerate([1, 2, 3]):
        write_v1_run(tmp_path, "grpo", seed, [[["7"] * hits + ["x"] * (4 - hits)]])
        write_v1_run(tmp_path, "gdpo", seed, [[["7"] * (hits + (seed != 1)) + ["x"] * (4 - hits - (seed != 1))]])
    runs = {arm: {s: study.load_run(d) for s, d in by.items()} for arm, by in study.discover(tmp_path).items()}
    summary = study.summarize(runs, 1)
    rows = {(r[0], r[1]): r[2:] for r in study.paired(summary, "grpo")}
    assert rows[("gdpo", "digit")] == [3, pytest.approx(0.25), "2/0/1"]
    with pytest.raises(AnalysisError, match="no baseline arm 'nope'"):
        study.paired(summary, "nope")
    (tmp_path / "old" / "seed0" / "rollouts").mkdir(parents=True)
    (tmp_path / "old" / "seed0" / "rollouts" / "1.jsonl").write_text('{"output": "7", "gts": "7", "score": 1}\n')
    runs["old"] = {0: study.load_run(tmp_path / "old" / "seed0")}  # no command.txt: the first task
    with pytest.raises(AnalysisError, match="do not share one task"):
        study.summarize(runs, 1)
