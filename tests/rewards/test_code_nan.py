"""NaN only for our failures: whatever a program does (time out on every test, crash, exhaust memory or processes,
return a value the verdict cannot convert, build a deep directory tree or a flood of files for cleanup to trip on,
garble its record) scores 0, never NaN, and the honest rollouts around it score 1. A sandbox that cannot run at all
gives NaN, counted per window of samples, and too many of them stop the run naming the cause. Bounded: every
program is finite or stopped by the sandbox's limits, and each test has a pytest timeout."""

from __future__ import annotations

import math

import pytest
from code_group import DEEP_TREE, GT, HONEST, check_group, score_group, scorer

from gdpo_verl.rewards import code_rewards as c
from gdpo_verl.rewards import sandbox
from gdpo_verl.rewards.manager import MultiRewardScorer, parse_config
from gdpo_verl.rewards.sandbox import server

pytestmark = pytest.mark.timeout(300)

HOSTILE = {
    "times_out_everywhere": "while True:\n    pass",
    "deep_directory": DEEP_TREE + "print('deep', i)\n",
    "file_flood": """
import os
n = 0
for i in range(1000000):
    try:
        os.close(os.open(f'f{i}', os.O_CREAT | os.O_WRONLY))
        n += 1
    except OSError:
        break
print('files', n)
""",
    "crash": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
    "memory": "x = bytearray(1 << 40)",
    "fork_storm": """
import os, time
for _ in range(200):
    try:
        if os.fork() == 0:
            os.setsid()
            time.sleep(60)
            os._exit(0)
    except OSError:
        break
time.sleep(60)
""",
    "garbled_record": "import os\nos.write(3, b'{\"value\": 1e999999}' * 10)\nos._exit(0)",
}


@pytest.mark.skipif(sandbox.isolation_mode() != "namespaces", reason="floods and deep trees need the per-case tmpfs")
def test_program_failures_score_zero_never_nan():
    gt = {**GT, "inputs": GT["inputs"] * 3, "outputs": GT["outputs"] * 3}  # 6 tests: a time-out on each is 6 x 2 s
    bodies = [HONEST]
    for body in HOSTILE.values():
        bodies += [body, HONEST]
    results = score_group(bodies, gt=gt, per_test_s=1, max_total_s=4.0, timeout_s=30)
    check_group(bodies, {i for i, b in enumerate(bodies) if b == HONEST}, results)
    for i, b in enumerate(bodies):
        if b in (HOSTILE["times_out_everywhere"], HOSTILE["crash"], HOSTILE["memory"], HOSTILE["fork_storm"]):
            assert results[i][1] == 0.0, (i, results[i])  # not bug-free


def test_values_the_verdict_cannot_convert_score_zero():
    gt = {"fn_name": "f", "inputs": [[1], [2]], "outputs": [1.5, 2.5]}  # expected floats
    bodies = ["def f(x):\n    return x + 0.5", "def f(x):\n    return 10 ** 4000", "def f(x):\n    return x + 0.5"]
    check_group(bodies, {0, 2}, score_group(bodies, gt=gt))


def test_a_timeout_a_program_could_run_into_is_refused_at_start():
    rewards = [{"name": "pass_rate", "timeout_s": 30, "kwargs": {"max_total_s": 60}}]
    with pytest.raises(ValueError, match="max_total_s=60.*timeout_s|timeout_s=30.*max_total_s"):
        MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0, "rewards": rewards}))


def test_nan_guard_counts_per_window():
    guard = c.NanGuard(max_share=0.25, window=4)
    ok, nan = [("pass_rate", None, None)], [("pass_rate", "SandboxUnavailable", "cannot start")]
    for outcomes in (nan, ok, ok, ok, nan, ok, ok, ok):  # 1 of 4 per window: not over the share
        guard.record(outcomes)
    guard.record([])  # a sample without code rewards does not count
    for outcomes in (nan, nan, ok):
        guard.record(outcomes)
    with pytest.raises(c.CodeRewardsFailing, match=r"2 of 4 .*SandboxUnavailable.*max_code_nan_share"):
        guard.record(ok)


def test_a_sandbox_that_stops_working_stops_the_run(monkeypatch, tmp_path):
    s = scorer(max_workers=0)
    s.code_nan = c.NanGuard(max_share=0.5, window=4)
    broken = tmp_path / "launcher.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    try:
        sandbox.shutdown()
        monkeypatch.setattr(server, "LAUNCHER", broken)
        payload = {"data_source": "code", "ground_truth": GT, "extra_info": {}, "num_tokens": 5}
        with pytest.raises(c.CodeRewardsFailing, match="sandbox failed"):
            for i in range(4):
                out = s.score_sync({**payload, "solution_str": f"```python\n# {i}\n{HONEST}\n```"})
                assert math.isnan(out["pass_rate"]) and out["gdpo_reward_failures"] == 2
    finally:
        s.close()
        sandbox.shutdown()


def test_a_failed_case_setup_is_the_sandboxs_failure_and_a_program_cannot_forge_it():
    if sandbox.isolation_mode() != "namespaces":
        pytest.skip("the per-case tmpfs exists with namespaces only")
    with pytest.raises(sandbox.SandboxUnavailable, match="case setup failed.*mount"):
        sandbox.run_python("print(1)", limits=sandbox.Limits(tmpfs_mb=-1))  # the mount fails before any program
    forged = "import os\nos.write(4, b'ok')\nos.write(2, b'case setup failed')\nos._exit(125)"
    assert c.run_tests(f"```python\n{forged}\n```", GT).status == ("error", "error")  # its own failure: 0
