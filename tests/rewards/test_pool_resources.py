"""What the scorer creates, it releases: close() leaves no worker, no sandbox server (the self-test's included) and
no sandbox cgroup; an unwritable TMPDIR leaves no cgroup behind; an idle sandbox server that died is not reused."""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time

import pytest

from gdpo_verl.rewards import code_rewards, sandbox
from gdpo_verl.rewards.leftovers import sandbox_cgroups, sandbox_servers
from gdpo_verl.rewards.manager import FAILURES_KEY, MultiRewardScorer, parse_config
from gdpo_verl.rewards.sandbox import server as sandbox_server

pytestmark = pytest.mark.timeout(240)

GOOD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
GT = {"inputs": ["2 3\n", "1 1\n"], "outputs": ["5\n", "2\n"]}


def _has_cgroups() -> bool:
    try:
        return sandbox.describe()["cgroup"] is not None
    except Exception:  # noqa: BLE001
        return False


needs_cgroups = pytest.mark.skipif(not _has_cgroups(), reason="needs per-sandbox cgroups (root, cgroup v1 or v2)")


def _wait_until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _payload(response: str = GOOD) -> dict:
    return {"data_source": "t", "solution_str": response, "ground_truth": GT, "extra_info": {}, "num_tokens": 10}


@needs_cgroups
@pytest.mark.parametrize("run", range(3))  # the exit-handler race showed in 4 of 6 runs
def test_close_releases_workers_servers_and_cgroups(run):
    sandbox.shutdown()  # servers other tests of this process left idle
    me = os.getpid()
    fds = len(os.listdir("/proc/self/fd"))
    scorer = MultiRewardScorer(parse_config({"suite": "code", "max_workers": 2}))
    left = (sandbox_servers({me}), sandbox_cgroups({me}))
    assert left == ([], []), left  # the self-test's server is already gone
    rows = [scorer.submit(_payload()) for _ in range(4)]
    assert [scorer.finish(f.result(timeout=120))["pass_rate"] for f in rows] == [1.0] * 4
    procs = [w.proc for w in scorer.pool._workers]
    pids = {p.pid for p in procs} | {me}
    started = (len(procs), sandbox_cgroups(pids), sandbox_servers(pids))
    assert started[0] == 2 and started[1] and started[2], started  # the workers did start sandboxes
    start = time.monotonic()
    scorer.close()
    assert time.monotonic() - start < 15
    codes = [p.returncode for p in procs]
    assert codes == [0, 0], codes  # exited by themselves (their exit handler ran to its end)
    assert _wait_until(lambda: not sandbox_servers(pids)), sandbox_servers(pids)
    assert sandbox_cgroups(pids) == [], sandbox_cgroups(pids)
    assert len(os.listdir("/proc/self/fd")) == fds, (os.listdir("/proc/self/fd"), fds)


@needs_cgroups
def test_unwritable_tmpdir_leaves_no_cgroup_and_is_a_counted_nan(monkeypatch, tmp_path):
    scorer = MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0}))  # inline: this process's cgroups
    sandbox.shutdown()  # no idle server: every call must start one
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # no temporary file can be created
    me = os.getpid()
    for _ in range(5):
        code_rewards._run_cached.cache_clear()
        row = scorer.score_sync(_payload())
        assert math.isnan(row["pass_rate"]) and math.isnan(row["bug_free"]) and row[FAILURES_KEY] == 2.0
    assert scorer.failures[("pass_rate", "FileNotFoundError")] == 5
    assert sandbox_cgroups({me}) == []  # before: two cgroup directories (memory, pids) leaked per server start
    scorer.close()


@needs_cgroups
def test_an_idle_sandbox_server_that_died_is_not_reused():
    sandbox.shutdown()
    code_rewards._run_cached.cache_clear()
    assert code_rewards.pass_rate(GOOD, GT) == 1.0
    (server,) = [s for idle in sandbox_server._idle.values() for s in idle]
    os.killpg(server.proc.pid, signal.SIGKILL)  # dies while idle (OOM killer, an operator, ...)
    assert _wait_until(lambda: server.proc.poll() is not None)
    code_rewards._run_cached.cache_clear()
    assert code_rewards.pass_rate(GOOD, GT) == 1.0  # before: SandboxUnavailable on the dead server, NaN
    assert all(not os.path.isdir(d) for d in server.cgroup["dirs"].values())  # the dead one was released
    sandbox.shutdown()


@needs_cgroups
def test_scorer_rows_after_a_dead_idle_server_have_no_failures():
    scorer = MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0}))  # inline: this process's servers
    try:
        assert scorer.score_sync(_payload())[FAILURES_KEY] == 0.0
        servers = [s for idle in sandbox_server._idle.values() for s in idle]
        for s in servers:
            os.killpg(s.proc.pid, signal.SIGKILL)
        assert _wait_until(lambda: all(s.proc.poll() is not None for s in servers))
        code_rewards._run_cached.cache_clear()
        row = scorer.score_sync(_payload())
        assert row["pass_rate"] == 1.0 and row[FAILURES_KEY] == 0.0
    finally:
        scorer.close()
