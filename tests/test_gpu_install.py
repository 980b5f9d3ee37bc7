"""`pip install ".[gpu]"` and `".[gpu-fsdp]"` resolve against the package index, from wheels only, for every supported
Python on Linux x86-64 (glibc 2.31), so the GPU install cannot silently rot.

This test talks to the package index (the one pip is configured with): it is marked `index`. When the index cannot
be reached it FAILS, saying so; it never skips (deselect it explicitly with `-m "not index"` on an offline machine).
Both extras are resolved together: a resolution of the union is also one of each extra, since each extra's
requirements are a subset of the union's. Markers of our own extras are evaluated for the target Python here;
markers inside dependencies' metadata are evaluated by pip for the Python running it (3.11), a known pip limitation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = ("3.10", "3.11", "3.12")
# vLLM 0.24.0 needs llguidance 1.7, whose Linux x86-64 wheels are manylinux_2_31: the GPU install needs glibc >= 2.31.
GLIBC_MINOR = 31
# verl's config needs hydra-core 1.3 -> omegaconf 2.3 -> antlr4-python3-runtime 4.9.*, published only as a
# pure-Python source archive (no compiler needed). It is built to a wheel first so that a wheels-only resolution sees
# it; without it pip would silently fall back to hydra-core 0.11 (checked below).
PURE_SDISTS = ("antlr4-python3-runtime==4.9.3",)
EXPECTED = {  # what verl 0.9.1 pins or targets (setup metadata and its pyproject's [tool.uv.sources])
    "verl": "0.9.1",
    "vllm": "0.24.0",
    "torch": "2.11.0",
    "transformers": "5.9.0",
    "mbridge": "0.15.1",
}
UNREACHABLE = ("Could not fetch URL", "NewConnectionError", "Max retries exceeded", "Temporary failure in name")

pytestmark = pytest.mark.index


def extra_requirements(extra: str, python: str) -> list[str]:
    """The project's dependencies plus one extra's, with their markers evaluated for Linux x86-64 and `python`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "extra": "",
    }
    out = []
    for line in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(str(req))
    return out


def _pip(*args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--timeout", "30", "--retries", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _fail(what: str, proc: subprocess.CompletedProcess[str]) -> None:
    tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-3000:]
    if any(marker in proc.stderr for marker in UNREACHABLE):
        pytest.fail(f"the package index is unreachable; this test needs it ({what}):\n{tail}")
    pytest.fail(f"{what} failed (exit {proc.returncode}):\n{tail}")


@pytest.fixture(scope="module")
def pure_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pure-wheels")
    proc = _pip("wheel", "--no-deps", "--quiet", "-w", str(folder), *PURE_SDISTS, timeout=300)
    if proc.returncode:
        _fail(f"building {PURE_SDISTS}", proc)
    return folder


def test_marker_evaluation_picks_megatron_core_per_python() -> None:
    def core(python: str) -> list[str]:
        return [r for r in extra_requirements("gpu", python) if r.startswith("megatron-core")]

    assert core("3.12") == ["megatron-core==0.18.0"]  # verl 0.9.1 builds against core_v0.18.0 (Python >= 3.12)
    assert core("3.10") == core("3.11") == ["megatron-core==0.16.1"]  # the newest release for Python < 3.12
    assert not [r for r in extra_requirements("gpu-fsdp", "3.12") if r.startswith("megatron")]


@pytest.mark.parametrize("python", SUPPORTED)
def test_gpu_extras_resolve_from_wheels(python: str, pure_wheels: Path, tmp_path: Path) -> None:
    reqs = sorted({*extra_requirements("gpu", python), *extra_requirements("gpu-fsdp", python)})
    platforms = [f"manylinux_2_{m}_x86_64" for m in range(5, GLIBC_MINOR + 1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    report = tmp_path / "report.json"
    args = ["install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--use-feature=fast-deps"]
    args += ["--python-version", python, "--target", str(tmp_path / "target"), "--report", str(report)]
    args += ["--find-links", str(pure_wheels)]
    args += [f"--platform={p}" for p in platforms]
    proc = _pip(*args, *reqs, timeout=900)
    if proc.returncode:
        _fail(f"resolving [gpu,gpu-fsdp] for Python {python}", proc)
    installed = {item["metadata"]["name"].lower(): item for item in json.loads(report.read_text())["install"]}
    versions = {name: item["metadata"]["version"] for name, item in installed.items()}
    expected = {**EXPECTED, "megatron-core": "0.18.0" if python == "3.12" else "0.16.1"}
    assert {k: versions.get(k) for k in expected} == expected
    assert Version(versions["hydra-core"]) >= Version("1.3"), "hydra-core fell back to a release verl cannot use"
    not_wheels = [n for n, item in installed.items() if not item["download_info"]["url"].endswith(".whl")]
    assert not_wheels == []
