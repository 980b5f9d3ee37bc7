"""Fair CPU: each sandbox has its own CPU share and a one-core quota (cgroup cpu controller), so processes of one
response, however many and in however many sessions, cannot starve a response running beside it. An honest
CPU-bound program scores the same alone and beside fork storms of setsid busy loops. Bounded: the storms end at the
sandbox's wall limit; pytest-timeout per test."""

from __future__ import annotations

import pytest
from code_group import check_group, score_group

from gdpo_verl.rewards.sandbox import describe, isolation_mode

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs root + unshare"),
]
N = 4_000_000  # about 0.5 s of CPU in CPython: beside the storms without a CPU share it timed out
BUSY = "n = int(input())\nprint(sum(i * i % 7 for i in range(n)))"
STORM = """
import os
for _ in range(64):
    try:
        if os.fork() == 0:
            os.setsid()
            while True:
                pass
    except OSError:
        break
while True:
    pass
"""


def test_cpu_bound_program_scores_the_same_beside_fork_storms():
    if not describe()["cpu_controller"]:
        pytest.skip("no cpu cgroup controller here (the sandbox warned at start)")
    gt = {"inputs": [f"{N}\n"], "outputs": [f"{sum(i * i % 7 for i in range(N))}\n"]}
    kw = {"gt": gt, "per_test_s": 4, "max_workers": 4}
    check_group([BUSY], {0}, score_group([BUSY], **kw))  # alone
    bodies = [STORM, STORM, STORM, BUSY, STORM, STORM, STORM, BUSY]  # four at a time: one honest beside three storms
    check_group(bodies, {3, 7}, score_group(bodies, **kw))
    check_group([BUSY], {0}, score_group([BUSY], **kw))  # after
