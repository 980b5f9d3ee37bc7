"""verl 0.9.1's own CPU tests for the areas we hook, run with the plugin loaded and with it switched off
(``VERL_USE_EXTERNAL_PLUGINS=none``): no test may change outcome. CPU mode is not asked for (``GDPO_VERL_CPU`` unset).

    python ci/verl_own_tests.py [--cache .ci-cache]

The tests come from verl's sdist (``pip download --no-binary :all: verl==0.9.1``), copied away from its ``verl/``
package so that the installed verl (where the plugin's entry point lives) is the one imported. Exit 1 on any
change of outcome, 2 when a run did not produce results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

VERL = "0.9.1"
# Bounded set, by area we hook: platform, core algorithms and the V1 advantage step, metrics, trainer/worker config,
# the agent loop's reward_extra_info fields (the sdist ships no reward-loop tests).
TEST_FILES = (
    "tests/plugin/test_platform_abstraction.py",
    "tests/trainer/ppo/test_core_algos_on_cpu.py",
    "tests/trainer/test_multi_trajectories_advantage_on_cpu.py",
    "tests/trainer/ppo/test_metric_utils_on_cpu.py",
    "tests/test_base_config_on_cpu.py",
    "tests/experimental/fully_async_policy/test_async_genrm_config_on_cpu.py",
    "tests/experimental/agent_loop/test_agent_loop_extra_fields_schema_on_cpu.py",
)
RUNS = {"plugin": {}, "no_plugin": {"VERL_USE_EXTERNAL_PLUGINS": "none"}}


def verl_tests(cache: Path) -> Path:
    """An unpacked copy of the sdist's tests/ (downloaded once into ``cache``)."""
    sdist = cache / f"verl-{VERL}.tar.gz"
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
            + ["--no-build-isolation", f"verl=={VERL}", "-d", str(cache)],
            check=True,
        )
    root = cache / f"verl-{VERL}-tests"
    if not (root / "tests").is_dir():
        shutil.rmtree(root, ignore_errors=True)
        prefix = f"verl-{VERL}/tests/"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for m in members:
                m.name = m.name[len(f"verl-{VERL}/") :]
            tar.extractall(root, members=members, filter="data")
        (root / "pytest.ini").write_text("[pytest]\n")  # not this project's pytest settings
    return root


def outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = next((k for k in ("error", "failure", "skipped") if k in kinds), "passed")
    return out


def run(root: Path, label: str, extra_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GDPO_VERL_CPU", "VERL_USE_EXTERNAL_PLUGINS")}
    env.update(extra_env)
    junit = root / f"{label}.xml"
    junit.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *TEST_FILES]
    start = time.monotonic()
    subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
    if not junit.exists():
        raise SystemExit(f"verl's tests ({label}) produced no results: {' '.join(cmd)}")
    found = outcomes(junit)
    counts = {k: list(found.values()).count(k) for k in sorted(set(found.values()))}
    print(f"{label}: {len(found)} tests {counts} in {time.monotonic() - start:.0f}s")
    return found


def compare(with_plugin: dict[str, str], without: dict[str, str]) -> list[str]:
    """Every test whose outcome differs between the two runs, described."""
    return sorted(
        f"{name}: {without.get(name, 'absent')} without the plugin, {with_plugin.get(name, 'absent')} with it"
        for name in set(with_plugin) | set(without)
        if with_plugin.get(name) != without.get(name)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=".ci-cache", help="where the sdist is downloaded and unpacked")
    parser.add_argument(
        "--cpu-mode", action="store_true", help="run the plugin side with GDPO_VERL_CPU=1 (outcomes may change there)"
    )
    args = parser.parse_args(argv)
    root = verl_tests(Path(args.cache).resolve())
    runs = {**RUNS, "plugin": {"GDPO_VERL_CPU": "1"}} if args.cpu_mode else RUNS
    results = {label: run(root, label, env) for label, env in runs.items()}
    changed = compare(results["plugin"], results["no_plugin"])
    for line in changed:
        print(f"CHANGED {line}")
    if not changed:
        print(f"OK: no outcome of verl {VERL}'s own tests changes with the plugin loaded")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
