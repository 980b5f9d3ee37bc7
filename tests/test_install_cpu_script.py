"""scripts/install_cpu.sh: its options, and the Megatron pins the CPU adjustments are written for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from gdpo_verl_plugins.cpu.megatron.pins import PINS

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_cpu.sh"


@pytest.mark.parametrize("args", [["--bogus"], ["--test", "--megatron", "--gpu"], ["--megatron", "-x"]])
def test_unknown_options_are_refused_before_installing_anything(args):
    out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "unknown option" in out.stderr and "--megatron" in out.stderr


def test_megatron_pins_match_what_the_cpu_adjustments_were_written_for():
    text = SCRIPT.read_text()
    pins = re.findall(r'"((?:megatron-core|mbridge)==[\d.]+)"', text)
    assert sorted(pins) == sorted(p.strip() for p in PINS.split(","))
    assert re.search(r"--no-deps \"megatron-core==[\d.]+\" \"mbridge==[\d.]+\"", text)
    assert "einops" in text


def _pip_calls(tmp_path, args: list[str]) -> list[str]:
    """Run the script with a stand-in ``python`` on PATH that records its arguments instead of installing."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "calls.txt"
    fake = bindir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\ncat > /dev/null\n')
    fake.chmod(0o755)
    log.unlink(missing_ok=True)
    env = {"PATH": f"{bindir}:/usr/bin:/bin"}
    out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("args", [["--test", "--megatron"], ["--megatron", "--test"]])
def test_flags_combine_in_either_order(tmp_path, args):
    calls = _pip_calls(tmp_path, args)
    assert any(c.endswith("[cpu,test]") for c in calls), calls
    assert any("--no-deps megatron-core==0.16.1 mbridge==0.15.1" in c for c in calls), calls
    assert any(c.endswith("install --quiet einops") for c in calls), calls


def test_without_megatron_no_megatron_package_is_installed(tmp_path):
    calls = _pip_calls(tmp_path, ["--test"])
    assert any(c.endswith("[cpu,test]") for c in calls)
    assert not any("megatron" in c or "einops" in c for c in calls), calls
