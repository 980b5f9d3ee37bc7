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
