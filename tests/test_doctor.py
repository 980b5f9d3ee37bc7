"""`gdpo-verl doctor --backend` on the CPU and GPU installs, and the recipes' choice of backend settings."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gdpo_verl.check import choices
from gdpo_verl.check.backend import BACKENDS

ROOT = Path(__file__).resolve().parents[1]
needs_verl = pytest.mark.skipif(importlib.util.find_spec("verl") is None, reason="doctor reads the installed verl")


@needs_verl
@pytest.mark.verl
@pytest.mark.skipif(importlib.util.find_spec("mbridge") is None, reason="the CPU install without --megatron")
def test_cpu_megatron_install_is_ok_verdict_first_and_quiet() -> None:
    torch = pytest.importorskip("torch")
    if torch.version.cuda is not None:
        pytest.skip("a CUDA torch: not the CPU install")
    out = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "doctor", "--backend", "megatron"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "gdpo-verl doctor: OK (megatron on this CPU install): verl runs gdpo_verl for adv_estimator=gdpo"
    assert all(line.startswith("  ") for line in lines[1:]), lines  # the report only: no library warning
    assert out.stderr == ""
    text = out.stdout
    assert "PROBLEM" not in text and "MISMATCH" not in text
    for module in ("megatron.bridge", "transformer_engine", "flash_attn"):
        row = next(line for line in lines if f" {module} " in line)
        assert "not expected on the CPU install" in row, row
    assert "megatron-core 0.16.1 (expected ==0.16.1): ok" in text and "mbridge 0.15.1 (expected ==0.15.1): ok" in text


def test_cpu_megatron_pins_match_the_install_script() -> None:
    from gdpo_verl.doctor import CPU_MEGATRON_PINS

    script = (ROOT / "scripts" / "install_cpu.sh").read_text()
    for dist, pin in CPU_MEGATRON_PINS.items():
        assert f'"{dist}{pin}"' in script


@pytest.fixture()
def gpu_machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """A GPU machine whose installed packages and import results the test sets."""
    from gdpo_verl import doctor

    installed: dict[str, str | None] = {
        "torch": "2.11.0",
        "megatron-core": "0.18.0",
        "mbridge": "0.15.1",
        "vllm": "0.24.0",
        "apex": "0.9.10.dev0",  # the index's unrelated `apex`
    }
    failing = {"megatron.bridge", "transformer_engine", "flash_attn", "apex.normalization"}

    def fake_import(name: str) -> str | None:
        return f"ModuleNotFoundError: No module named '{name}'" if name in failing else None

    monkeypatch.setattr(doctor, "_import", fake_import)
    monkeypatch.setattr(doctor, "_installed", lambda dist: installed.get(dist))
    monkeypatch.setattr(doctor, "cpu_install", lambda: False)
    pins = {
        ("verl", None): {"torch": "==2.11.0", "vllm": "==0.24.0"},
        ("gdpo-verl", "gpu"): {"megatron-core": "==0.18.0", "mbridge": "==0.15.1"},
    }
    monkeypatch.setattr(doctor, "requires_pins", lambda dist, extra=None: pins[(dist, extra)])
    return installed


def test_gpu_install_without_te_flash_apex_bridge_is_ok_with_costs(gpu_machine: dict) -> None:
    from gdpo_verl import doctor

    report = doctor.check_node(["megatron", "vllm"])
    assert report.install == "gpu" and report.problems == []
    notes = "\n".join(report.notes)
    assert "no transformer-engine (ModuleNotFoundError): the recipes use transformer_impl=local" in notes
    assert "no flash-attn (ModuleNotFoundError): verl unpads and computes log-probs with its pure-torch" in notes
    assert "only vanilla_mbridge=True works" in notes
    apex = next(line for line in report.lines if "apex.normalization" in line)
    assert "not NVIDIA apex" in apex
    assert len(report.notes) == 4  # bridge, TE, flash-attn, apex


def test_gpu_install_missing_mbridge_or_version_drift(gpu_machine: dict) -> None:
    from gdpo_verl import doctor

    gpu_machine["mbridge"] = None
    gpu_machine["megatron-core"] = "0.16.1"
    real = doctor._import
    doctor_import = lambda name: "ModuleNotFoundError: No module named 'mbridge'" if name == "mbridge" else real(name)  # noqa: E731
    doctor._import = doctor_import
    try:
        report = doctor.check_node(["megatron"])
    finally:
        doctor._import = real
    assert report.problems == [
        "megatron: `import mbridge` fails (ModuleNotFoundError: No module named 'mbridge'); verl needs it for "
        "HF <-> Megatron weights with vanilla_mbridge=True (the recipes' choice)"
    ]
    assert any(n.startswith("megatron-core 0.16.1 differs from the expected ==0.18.0") for n in report.notes)


def test_fsdp2_without_flash_attn_costs_sdpa(gpu_machine: dict) -> None:
    from gdpo_verl import doctor

    report = doctor.check_node(["fsdp2"])
    assert report.problems == []
    assert report.notes == [f"fsdp2: no flash-attn (ModuleNotFoundError): {BACKENDS['fsdp2'][0].without}"]


def test_recipe_choices_follow_what_is_installed() -> None:
    nothing, everything = (lambda m: False), (lambda m: True)
    overrides, said = choices.megatron_choice({}, have=nothing)
    assert overrides == [f"{choices.ACTOR}.vanilla_mbridge=True", *choices.LOCAL_LAYERS, *choices.NO_FUSED_SOFTMAX]
    assert said[1].startswith("Transformer Engine not installed (TE=auto): transformer_impl=local")
    overrides, said = choices.megatron_choice({}, have=everything)
    assert overrides == [f"{choices.ACTOR}.vanilla_mbridge=True"]
    overrides, _ = choices.megatron_choice({"MEGATRON_BRIDGE": "1", "TE": "1"}, have=nothing)
    assert overrides == [f"{choices.ACTOR}.vanilla_mbridge=False"]  # asked for: no fallback
    overrides, _ = choices.megatron_choice({"TE": "0", "APEX": "1"}, have=everything)
    assert overrides == [f"{choices.ACTOR}.vanilla_mbridge=True", *choices.LOCAL_LAYERS]
    assert choices.fsdp2_choice({}, have=nothing)[0] == list(choices.SDPA)
    assert choices.fsdp2_choice({}, have=everything)[0] == []
    with pytest.raises(ValueError, match="TE='yes': expected auto, 1 or 0"):
        choices.megatron_choice({"TE": "yes"}, have=everything)


def test_recipe_prints_its_choice(tmp_path: Path) -> None:
    dump = tmp_path / "args.txt"
    env = {"GDPO_VERL_CHECK_DUMP": str(dump), "TE": "0", "HOME": str(tmp_path)}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "math_r1_distill_7b.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "recipe (megatron): Transformer Engine TE=0: transformer_impl=local" in out.stderr
    args = dump.read_text().splitlines()
    assert f"{choices.ACTOR}.vanilla_mbridge=True" in args and choices.LOCAL_LAYERS[0] in args


def test_gpu_extras_are_wheels_only_and_pin_what_verl_targets() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in ("gpu", "gpu-fsdp"):
        text = " ".join(extras[name])
        for source_only in ("megatron-bridge", "transformer-engine", "flash-attn", "apex", "verl[megatron", "fsdp]"):
            assert source_only not in text, (name, source_only)
    assert "verl[vllm]==0.9.1" in extras["gpu"] and "mbridge==0.15.1" in extras["gpu"]
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[gpu]"' in readme and "gdpo-verl doctor --backend megatron" in readme


def test_requires_pins_reads_the_installed_metadata() -> None:
    from gdpo_verl.check.backend import requires_pins

    gpu = requires_pins("gdpo-verl", extra="gpu")
    assert gpu["verl"] == "==0.9.1" and gpu["mbridge"] == "==0.15.1"
    assert "torch" not in gpu  # the cpu extra's pin, not the gpu one's
    assert requires_pins("gdpo-verl", extra="cpu")["torch"] == "==2.13.0"
    assert requires_pins("no-such-distribution-xyz") == {}
