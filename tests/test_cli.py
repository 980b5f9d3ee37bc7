"""The `gdpo-verl` dispatcher and `gdpo-verl doctor`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gdpo_verl.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_an_error():
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2


@pytest.mark.verl
def test_doctor_reports_our_estimator_and_fails_when_plugins_are_off():
    pytest.importorskip("verl")
    cmd = [sys.executable, "-m", "gdpo_verl.cli", "doctor"]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "gdpo_verl_plugins.adv_estimator.compute_gdpo_outcome_advantage" in ok.stdout
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "none"}
    off = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert off.returncode == 1
    assert "would run verl's built-in" in off.stdout and "VERL_USE_EXTERNAL_PLUGINS='none'" in off.stdout


def test_version_is_the_installed_distributions():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    out = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == f"gdpo-verl {pyproject['project']['version']}"


def _check(argv, capsys):
    code = main(["check", *argv])
    return code, capsys.readouterr().out


def test_check_with_a_script_where_overrides_go_gets_a_hint(capsys):
    code, out = _check(["examples/math_r1_distill_7b.sh"], capsys)
    assert code == 2
    assert out.strip() == (
        "gdpo-verl check: 'examples/math_r1_distill_7b.sh' is not a Hydra override; to check a script, run "
        "`gdpo-verl check --script examples/math_r1_distill_7b.sh`"
    )
    code, out = _check(["script.sh"], capsys)  # a script name that is not there gets the hint too
    assert code == 2 and "gdpo-verl check --script script.sh" in out


def test_check_of_a_missing_script_says_so_first(capsys):
    code, out = _check(["--script", "examples/nope.sh"], capsys)
    assert code == 2 and out.strip() == "gdpo-verl check: --script examples/nope.sh: no such file"
