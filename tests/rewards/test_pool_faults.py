"""Faults injected into the reward pool itself: caller-side cancellation, workers that cannot be started, a stopped
worker holding a large task, exceptions that cannot be printed. Each test bounds its waits (future timeouts) so it
fails instead of hanging when the pool is wrong, and checks that the next batch is scored correctly."""

from __future__ import annotations

import asyncio
import math
import os
import resource
import signal
import textwrap
import threading
import time

import pytest

from gdpo_verl.rewards.manager import FAILURES_KEY, MultiRewardScorer, parse_config
from gdpo_verl.rewards.pool import RewardPool, RewardPoolUnavailable

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fns(tmp_path) -> str:
    path = tmp_path / "fault_rewards.py"
    path.write_text(
        textwrap.dedent(f"""
        import os, time
        def sleep(extra_info, **_):
            time.sleep(extra_info["s"])
            return 1.0
        def size(solution_str, **_):
            return float(len(solution_str))
        def logged(solution_str, **_):
            with open({str(tmp_path / "ran.txt")!r}, "a") as f:
                f.write(solution_str + "\\n")
            return 1.0
        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no")
        def unprintable(**_):
            raise Unprintable()
        def pid(**_):
            return float(os.getpid())
    """)
    )
    return str(path)


def _run(pool: RewardPool, fn: str, timeout: float, solution: str = "", s: float = 0.0):
    return pool.submit({"solution_str": solution, "extra_info": {"s": s}}, [(fn, {})], [timeout])


def _scorer(fn: str, workers: int = 1) -> MultiRewardScorer:
    return MultiRewardScorer(parse_config({"rewards": [{"name": "r", "fn": fn}], "max_workers": workers}))


# --- 1. caller-side cancellation ---------------------------------------------------------------------------------
def test_wait_for_cancelling_a_running_call_leaves_the_scorer_working(fns):
    scorer = _scorer(f"{fns}:sleep")

    async def main():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(scorer.score({"solution_str": "", "extra_info": {"s": 1.0}}), 0.2)
        # the next batch: every row scored (the cancelled row's late result was dropped, not fatal)
        return await asyncio.wait_for(
            asyncio.gather(*[scorer.score({"solution_str": "", "extra_info": {"s": 0.05}}) for _ in range(4)]), 60
        )

    try:
        out = asyncio.run(main())
        assert [o["r"] for o in out] == [1.0] * 4 and [o[FAILURES_KEY] for o in out] == [0.0] * 4
        assert scorer.pool.restarts == 0
    finally:
        scorer.close()


def test_taskgroup_shutdown_cancels_queued_rows_and_the_scorer_goes_on(fns):
    scorer = _scorer(f"{fns}:sleep")

    async def fail_soon():
        await asyncio.sleep(0.3)
        raise KeyError("a sibling task failed")

    async def main():
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                for _ in range(6):  # one runs, five wait in the queue; all are cancelled
                    tg.create_task(scorer.score({"solution_str": "", "extra_info": {"s": 0.5}}))
                tg.create_task(fail_soon())
        return await asyncio.wait_for(scorer.score({"solution_str": "", "extra_info": {"s": 0.0}}), 60)

    try:
        assert asyncio.run(main())["r"] == 1.0
    finally:
        scorer.close()


def test_cancelled_futures_not_yet_sent_are_dropped(fns, tmp_path):
    pool = RewardPool(1, depth=1)
    try:
        first = _run(pool, f"{fns}:sleep", 30, s=0.5)
        queued = [_run(pool, f"{fns}:logged", 30, solution=f"q{i}") for i in range(3)]
        assert all(f.cancel() for f in queued)
        last = _run(pool, f"{fns}:logged", 30, solution="last")
        assert first.result(timeout=60)[0].value == 1.0
        assert last.result(timeout=60)[0].value == 1.0
        assert (tmp_path / "ran.txt").read_text().split() == ["last"]  # the cancelled rows never ran
    finally:
        pool.close()


# --- 2. a worker that cannot be started -------------------------------------------------------------------------
def _lowest_free_fd() -> int:
    fd = os.dup(0)
    os.close(fd)
    return fd


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_out_of_descriptors_gives_counted_nan_then_the_pool_recovers(fns):
    before = _open_fds()
    pool = RewardPool(1, unavailable_s=60)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))  # no new descriptor at all
        try:
            fut = _run(pool, f"{fns}:size", 1.0, solution="abc")
            out = fut.result(timeout=30)[0]
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert (
            math.isnan(out.value)
            and out.cause == "WorkerUnavailable"
            and "OSError: [Errno 24] Too many open files" in out.message
        )
        assert pool.spawn_failures >= 1
        futs = [_run(pool, f"{fns}:size", 30, solution="x" * i) for i in range(3)]  # the condition has cleared
        assert [f.result(timeout=60)[0].value for f in futs] == [0.0, 1.0, 2.0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        pool.close()
    assert _open_fds() == before  # nothing leaked by the failed starts


def test_a_pool_that_cannot_start_any_worker_raises_one_clear_error_then_recovers(fns):
    pool = RewardPool(1, unavailable_s=1.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_lowest_free_fd(), hard))
        try:
            fut = _run(pool, f"{fns}:size", 30.0)  # its timeout is longer than the pool may go without a worker
            with pytest.raises(RewardPoolUnavailable, match=r"OSError: \[Errno 24\] Too many open files"):
                fut.result(timeout=30)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert _run(pool, f"{fns}:size", 30, solution="ok").result(timeout=60)[0].value == 2.0
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        pool.close()


def test_an_unexpected_dispatcher_error_is_absorbed(fns, monkeypatch):
    from gdpo_verl.rewards import pool as pool_mod

    calls = {"n": 0}
    real = pool_mod.RewardPool._serve_starved

    def flaky(self):
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise ZeroDivisionError("injected")
        return real(self)

    monkeypatch.setattr(pool_mod.RewardPool, "_serve_starved", flaky)
    pool = RewardPool(1)
    try:
        futs = [_run(pool, f"{fns}:size", 30, solution="x" * i) for i in range(3)]
        assert [f.result(timeout=60)[0].value for f in futs] == [0.0, 1.0, 2.0]
        assert pool.internal_errors == 2
    finally:
        pool.close()


def _resume(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


# --- 3. a stopped worker --------------------------------------------------------------------------------------
def test_a_stopped_idle_worker_with_a_large_task_blocks_nothing(fns):
    pool = RewardPool(1, depth=2)
    stopped: list[int] = []
    try:
        assert _run(pool, f"{fns}:size", 30, solution="w").result(timeout=60)[0].value == 1.0  # warm, now idle
        pid = pool._workers[0].proc.pid
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        start = time.monotonic()
        big = _run(pool, f"{fns}:size", 1.0, solution="y" * 300_000)  # > 64 KiB: does not fit the pipe
        other = _run(pool, f"{fns}:size", 1.0, solution="z" * 5)
        assert time.monotonic() - start < 1.0  # submit() never waits on a worker
        out = big.result(timeout=30)[0]
        assert math.isnan(out.value) and out.cause == "Timeout"
        assert time.monotonic() - start < 1.0 + 5.0 + 5.0  # the call's timeout + the read grace + slack
        assert other.result(timeout=30)[0].value == 5.0  # requeued to a fresh worker
        assert _run(pool, f"{fns}:size", 30, solution="y" * 300_000).result(timeout=60)[0].value == 300_000.0
        # close() with another stopped worker holding a large task returns in bounded time
        pid2 = pool._workers[0].proc.pid
        os.kill(pid2, signal.SIGSTOP)
        stopped.append(pid2)
        pending = _run(pool, f"{fns}:size", 60, solution="y" * 300_000)
        start = time.monotonic()
        pool.close()
        assert time.monotonic() - start < 15
        with pytest.raises(RuntimeError, match="closed"):
            pending.result(timeout=5)
    finally:
        _resume(stopped)  # first: a wrong pool must not hang this test on a stopped worker
        pool.close()


def test_submit_from_many_threads_while_a_worker_is_stopped(fns):
    pool = RewardPool(2, depth=2)
    stopped: list[int] = []
    try:
        assert _run(pool, f"{fns}:pid", 30).result(timeout=60)[0].value > 0
        stopped.append(pool._workers[0].proc.pid)
        os.kill(stopped[0], signal.SIGSTOP)
        futs, lock = [], threading.Lock()

        def feed():
            for i in range(10):
                f = _run(pool, f"{fns}:size", 2.0, solution="q" * (100_000 + i))
                with lock:
                    futs.append((f, 100_000 + i))

        threads = [threading.Thread(target=feed) for _ in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert time.monotonic() - start < 5
        values = [(f.result(timeout=60)[0], n) for f, n in futs]
        assert sum(1 for o, n in values if o.value == n) >= 38  # at most the stopped worker's tasks time out
        assert all(o.value == n or o.cause == "Timeout" for o, n in values)
    finally:
        _resume(stopped)
        pool.close()


# --- 5. an exception that cannot be printed ------------------------------------------------------------------
def test_an_exception_whose_str_raises_is_the_function_error_not_a_crash(fns):
    pool = RewardPool(1)
    try:
        outs = [_run(pool, f"{fns}:unprintable", 30).result(timeout=60)[0] for _ in range(3)]
        assert [o.cause for o in outs] == ["Unprintable"] * 3 and all(math.isnan(o.value) for o in outs)
        assert "str() of this Unprintable raised RuntimeError" in outs[0].message
        assert pool.restarts == 0
    finally:
        pool.close()


def test_a_killed_test_case_is_counted():
    from gdpo_verl.rewards import code_rewards

    code_rewards._run_cached.cache_clear()
    before = code_rewards.killed_cases
    killer = "```python\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n```"
    gt = {"inputs": ["1\n", "2\n", "3\n"], "outputs": ["1\n", "2\n", "3\n"]}
    report = code_rewards.run_tests(killer, gt)
    assert report.pass_rate == 0.0 and not report.bug_free
    assert code_rewards.killed_cases - before == 3  # before: judged a timeout, counted nowhere
