"""ci/verl_own_tests.py: outcomes read from pytest's JUnit XML, every change of outcome reported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ci_verl_own_tests", ROOT / "ci" / "verl_own_tests.py")
assert _spec is not None and _spec.loader is not None
vot = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = vot
_spec.loader.exec_module(vot)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="tests.plugin.test_platform_abstraction.TestPlatformDetection" name="test_auto" time="0.1"/>
<testcase classname="tests.test_a" name="test_fails" time="0.1"><failure message="x">boom</failure></testcase>
<testcase classname="tests.test_a" name="test_skip" time="0.0"><skipped message="no cuda"/></testcase>
<testcase classname="tests.test_a" name="test_err" time="0.0"><error message="setup"/></testcase>
</testsuite></testsuites>
"""


def test_outcomes_from_junit(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(JUNIT)
    assert vot.outcomes(path) == {
        "tests.plugin.test_platform_abstraction.TestPlatformDetection::test_auto": "passed",
        "tests.test_a::test_fails": "failure",
        "tests.test_a::test_skip": "skipped",
        "tests.test_a::test_err": "error",
    }


def test_every_change_is_reported():
    without = {"a": "passed", "b": "skipped", "c": "failure"}
    assert vot.compare(dict(without), without) == []
    changed = vot.compare({"a": "failure", "b": "passed", "d": "passed"}, without)
    assert changed == [
        "a: passed without the plugin, failure with it",
        "b: skipped without the plugin, passed with it",
        "c: failure without the plugin, absent with it",
        "d: absent without the plugin, passed with it",
    ]


def test_the_chosen_files_are_in_verl_sdist_layout():
    assert all(f.startswith("tests/") and f.endswith(".py") for f in vot.TEST_FILES)
    assert "tests/plugin/test_platform_abstraction.py" in vot.TEST_FILES
