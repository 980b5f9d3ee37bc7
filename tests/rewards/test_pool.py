"""RewardPool pipelining: queued tasks keep their timeout budget, survive a neighbour's timeout or crash, and a
payload too big for the worker's pipe never blocks the dispatcher."""

from __future__ import annotations

import gc
import math
import os
import textwrap
import time

import pytest

from gdpo_verl.rewards.pool import RewardPool

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fns(tmp_path) -> str:
    path = tmp_path / "pool_rewards.py"
    path.write_text(
        textwrap.dedent("""
        import os, time
        def sleep(extra_info, **_):
            time.sleep(extra_info["s"])
            return 1.0
        def size(solution_str, **_):
            return float(len(solution_str))
        def crash(**_):
            os._exit(3)
    """)
    )
    return str(path)


def _run(pool: RewardPool, fn: str, timeout: float, solution: str = "", s: float = 0.0):
    return pool.submit({"solution_str": solution, "extra_info": {"s": s}}, [(fn, {})], [timeout])


def test_queued_tasks_do_not_spend_their_timeout_waiting(fns):
    pool = RewardPool(1, depth=3)
    try:
        _run(pool, f"{fns}:size", 5).result()  # start the worker
        futs = [_run(pool, f"{fns}:sleep", 1.0, s=0.6) for _ in range(3)]  # 1.8 s in all, 0.6 s each
        assert [f.result()[0].value for f in futs] == [1.0, 1.0, 1.0]
        assert pool.restarts == 0
    finally:
        pool.close()


@pytest.mark.parametrize(("bad", "cause"), [("sleep", "Timeout"), ("crash", "WorkerCrashed")])
def test_queued_tasks_survive_the_failure_ahead_of_them(fns, bad, cause):
    pool = RewardPool(1, depth=3)
    try:
        start = time.monotonic()
        first = _run(pool, f"{fns}:{bad}", 1.0, s=30)
        rest = [_run(pool, f"{fns}:size", 1.0, solution="x" * i) for i in range(2)]
        out = first.result()[0]
        assert math.isnan(out.value) and out.cause == cause
        assert [f.result()[0].value for f in rest] == [0.0, 1.0]
        assert pool.restarts == 1 and time.monotonic() - start < 20
    finally:
        pool.close()


def test_big_payload_waits_for_an_idle_worker_without_blocking_timeouts(fns):
    pool = RewardPool(1, depth=2)
    try:
        start = time.monotonic()
        slow = _run(pool, f"{fns}:sleep", 1.0, s=30)
        big = _run(pool, f"{fns}:size", 5.0, solution="y" * 500_000)  # bigger than a pipe: not queued behind `slow`
        assert slow.result()[0].cause == "Timeout"
        assert big.result()[0].value == 500_000.0
        assert time.monotonic() - start < 20
    finally:
        pool.close()


def test_close_resolves_queued_and_running_tasks(fns):
    pool = RewardPool(1, depth=2)
    futs = [_run(pool, f"{fns}:sleep", 60, s=30) for _ in range(3)]
    time.sleep(1.0)
    pool.close()
    for f in futs:
        with pytest.raises(RuntimeError, match="closed"):
            f.result(timeout=5)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_close_and_garbage_collection_release_every_descriptor(fns):
    before = _open_fds()
    for _ in range(3):
        pool = RewardPool(1)
        assert _run(pool, f"{fns}:size", 30, solution="abc").result(timeout=60)[0].value == 3.0
        pool.close()
        pool.close()  # idempotent
    for _ in range(3):
        RewardPool(2)  # never used: dropped at once
    gc.collect()
    assert _open_fds() == before
    with pytest.raises(RuntimeError, match="closed"):
        _run(pool, f"{fns}:size", 30)
