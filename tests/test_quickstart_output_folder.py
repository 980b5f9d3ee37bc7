"""Nothing a user produced is deleted or replaced unasked: the quickstart's output folder, --overwrite, --resume,
--dry-run, --out naming a file, and a command that the checker refuses (nothing is written or started)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gdpo_verl.quickstart import assets, cli, output_folder


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _previous_run(folder: Path) -> dict[str, bytes]:
    """A folder as a finished run leaves it, plus a file of the user's."""
    (folder / "rollouts").mkdir(parents=True)
    (folder / "rollouts" / "1.jsonl").write_text('{"output": "7"}\n')
    (folder / "assets" / "model").mkdir(parents=True)
    shape = {**assets.MODEL_SHAPE, "vocab_size": assets.VOCAB_SIZE, "model_type": "qwen2"}
    (folder / "assets" / "model" / "config.json").write_text(json.dumps(shape))
    for name in ("metrics.jsonl", "verl.log", "summary.json", "command.txt"):
        (folder / name).write_text(f"previous {name}\n")
    (folder / "notes.md").write_text("mine\n")
    return _snapshot(folder)


def test_a_folder_with_a_previous_run_is_refused_with_the_reason_and_the_flag(tmp_path, capsys):
    before = _previous_run(tmp_path)
    assert cli.run(_args("--out", str(tmp_path), "--steps", "1")) == 2
    err = capsys.readouterr().err
    assert "already holds files (assets/, command.txt, metrics.jsonl, notes.md, rollouts/, summary.json" in err
    assert "--overwrite" in err and "--resume" in err
    assert _snapshot(tmp_path) == before


def test_a_dry_run_writes_nothing_into_a_folder_that_holds_files(tmp_path, capsys):
    before = _previous_run(tmp_path)
    assert cli.run(_args("--out", str(tmp_path), "--dry-run", "--overwrite")) == 0
    captured = capsys.readouterr()
    assert "verl.trainer.main_ppo" in captured.out and "nothing written" in captured.err
    assert _snapshot(tmp_path) == before


def test_out_naming_a_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "run.txt"
    target.write_text("not a folder\n")
    assert cli.run(_args("--out", str(target))) == 2
    assert capsys.readouterr().err.strip() == (
        f"gdpo-verl quickstart: --out {target} is an existing file, not a folder; name a folder (it is created if "
        "missing)"
    )
    assert cli.run(_args("--out", str(target), "--dry-run")) == 2 and "is an existing file" in capsys.readouterr().err
    assert target.read_text() == "not a folder\n"


def test_overwrite_removes_the_quickstart_outputs_only(tmp_path):
    _previous_run(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    removed = output_folder.prepare(tmp_path, overwrite=True)
    assert sorted(removed) == sorted(
        f"removed {name}"
        for name in ("assets", "rollouts", "checkpoints", "metrics.jsonl", "verl.log", "summary.json", "command.txt")
    )
    assert _snapshot(tmp_path) == {"notes.md": b"mine\n"} and sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


def test_resume_needs_a_checkpoint_and_drops_the_dumps_after_it(tmp_path):
    _previous_run(tmp_path)
    with pytest.raises(output_folder.FolderError, match="no checkpoint in"):
        output_folder.check(tmp_path, resume=True)
    with pytest.raises(output_folder.FolderError, match="exclude each other"):
        output_folder.check(tmp_path, overwrite=True, resume=True)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest_checkpointed_iteration.txt").write_text("2\n")
    for step in (2, 3, 10):
        (tmp_path / "rollouts" / f"{step}.jsonl").write_text("{}\n")
    (tmp_path / "metrics.jsonl.1").write_text("older\n")
    assert output_folder.prepare(tmp_path, resume=True) == [
        "removed rollouts/10.jsonl",
        "removed rollouts/3.jsonl",
        "kept metrics.jsonl as metrics.jsonl.2",
        "kept verl.log as verl.log.1",
        "kept summary.json as summary.json.1",
    ]
    assert sorted(p.name for p in (tmp_path / "rollouts").iterdir()) == ["1.jsonl", "2.jsonl"]
    assert not (tmp_path / "metrics.jsonl").exists()  # the resumed run's summary cannot read the previous metrics
    assert (tmp_path / "metrics.jsonl.2").read_text() == "previous metrics.jsonl\n"
    assert (tmp_path / "metrics.jsonl.1").read_text() == "older\n"


@pytest.mark.verl
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("+algorithm.gdpo_reward_weightz=[1,2]", "algorithm.gdpo_reward_weightz"),  # misspelled key
        ("algorithm.gdpo_reward_weights=[1,2,3]", "does not give one weight per key"),  # wrong weight count
    ],
)
def test_a_command_the_checker_refuses_starts_nothing_and_writes_nothing(tmp_path, capsys, override, named):
    pytest.importorskip("hydra")
    out = tmp_path / "run"
    assert cli.run(_args("--out", str(out), "--", override)) == 2
    err = capsys.readouterr().err
    assert err.startswith("gdpo-verl quickstart: the verl command would fail (nothing was started):") and named in err
    assert not out.exists()
