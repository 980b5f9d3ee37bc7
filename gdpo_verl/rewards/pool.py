"""A process pool for reward calls with a real per-call timeout.

Each task is one sample's list of reward calls; a worker runs them in order (so calls of one sample can share a
cache, e.g. code pass rate and bug-free share one sandbox run). A call that overruns its timeout gets its worker
killed and replaced; the task's remaining calls go to the front of the queue. A crashed worker is replaced the same
way. Workers are plain ``python -m gdpo_verl.rewards._worker`` subprocesses (no fork of a threaded parent, no
re-import of the parent's ``__main__``), started lazily.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ._worker import evaluate

STARTUP_GRACE_S = 60.0


@dataclass
class CallOutcome:
    value: float
    cause: str | None = None  # exception type name, "Timeout" or "WorkerCrashed"; None when the call succeeded
    message: str = ""


@dataclass
class _Task:
    id: int
    payload: dict[str, Any]
    calls: list[tuple[str, dict[str, Any]]]
    timeouts: list[float]
    future: Future
    results: list[CallOutcome | None] = field(default_factory=list)
    next: int = 0


class _Worker:
    def __init__(self, env: dict[str, str]) -> None:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gdpo_verl.rewards._worker", str(r1), str(w2)],
            pass_fds=(r1, w2),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.close(r1)
        os.close(w2)
        self.send = Connection(w1, readable=False)
        self.recv = Connection(r2, writable=False)
        self.task: _Task | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        for c in (self.send, self.recv):
            c.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class RewardPool:
    """``submit(payload, calls, timeouts)`` -> Future[list[CallOutcome]]; ``max_workers=0`` runs calls inline."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.restarts = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        self._env = env
        self._finalizer = weakref.finalize(self, RewardPool._shutdown, self._workers, self._wake_w)
        atexit.register(self._finalizer)

    def submit(self, payload: dict[str, Any], calls: list[tuple[str, dict[str, Any]]], timeouts: list[float]) -> Future:
        fut: Future = Future()
        task = _Task(next(self._ids), payload, calls, timeouts, fut, [None] * len(calls))
        if self.max_workers <= 0:
            self._run_inline(task)
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("RewardPool is closed")
            self._pending.append(task)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="gdpo-reward-pool", daemon=True)
                self._thread.start()
        os.write(self._wake_w, b"x")
        return fut

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._finalizer()
        for task in list(self._pending):
            task.future.set_exception(RuntimeError("RewardPool closed"))
        self._pending.clear()

    @staticmethod
    def _shutdown(workers: list[_Worker], wake_w: int) -> None:
        for w in list(workers):
            try:
                w.kill()
            except OSError:
                pass
        workers.clear()

    @staticmethod
    def _run_inline(task: _Task) -> None:
        for i, (fn, kwargs) in enumerate(task.calls):
            try:
                task.results[i] = CallOutcome(evaluate(fn, task.payload, kwargs))
            except Exception as e:  # noqa: BLE001
                task.results[i] = CallOutcome(float("nan"), type(e).__name__, str(e)[:500])
        task.future.set_result(task.results)

    # --- dispatcher thread -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._serve()
        except BaseException as e:  # never leave a caller waiting forever
            with self._lock:
                self._closed = True
                tasks = list(self._pending) + [w.task for w in self._workers if w.task is not None]
                self._pending.clear()
            for t in tasks:
                if not t.future.done():
                    t.future.set_exception(RuntimeError(f"reward pool dispatcher failed: {e!r}"))
            raise

    def _serve(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                self._assign()
            busy = [w for w in self._workers if w.task is not None]
            now = time.monotonic()
            timeout = min((w.deadline - now for w in busy), default=None)
            ready = wait([self._wake_r] + [w.recv for w in busy], None if timeout is None else max(0.0, timeout))
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for w in busy:
                if w.recv in ready:
                    self._receive(w)
            now = time.monotonic()
            for w in [w for w in self._workers if w.task is not None and now >= w.deadline]:
                t = w.task
                self._fail_current(w, "Timeout", f"call exceeded {t.timeouts[t.next]:g} s")

    def _assign(self) -> None:
        while self._pending:
            idle = next((w for w in self._workers if w.task is None), None)
            if idle is None and len(self._workers) < self.max_workers:
                idle = _Worker(self._env)
                self._workers.append(idle)
            if idle is None:
                return
            task = self._pending.popleft()
            try:
                idle.send.send((task.id, task.payload, task.calls, task.next))
            except (OSError, ValueError) as e:  # dead worker or unpicklable payload
                self._replace(idle)
                for i in range(task.next, len(task.calls)):
                    task.results[i] = CallOutcome(float("nan"), type(e).__name__, str(e)[:500])
                task.future.set_result(task.results)
                continue
            idle.task = task
            # until the worker has imported the task's functions (start-up, first imports) only a loose bound holds
            idle.deadline = time.monotonic() + task.timeouts[task.next] + STARTUP_GRACE_S

    def _receive(self, w: _Worker) -> None:
        try:
            while w.recv.poll():
                task_id, i, ok, value = w.recv.recv()
                t = w.task
                if t is None or task_id != t.id:
                    continue
                if i < 0:  # functions imported: the per-call clock starts now
                    w.deadline = time.monotonic() + t.timeouts[t.next]
                    continue
                t.results[i] = CallOutcome(value) if ok else CallOutcome(float("nan"), value[0], value[1])
                t.next = i + 1
                if t.next == len(t.calls):
                    w.task = None
                    t.future.set_result(t.results)
                    return
                w.deadline = time.monotonic() + t.timeouts[t.next]
        except (EOFError, OSError):
            code = w.proc.poll()
            self._fail_current(w, "WorkerCrashed", f"reward worker died (exit {code})")

    def _fail_current(self, w: _Worker, cause: str, message: str) -> None:
        t = w.task
        w.task = None
        self._replace(w)
        if t is None:
            return
        t.results[t.next] = CallOutcome(float("nan"), cause, message)
        t.next += 1
        if t.next == len(t.calls):
            t.future.set_result(t.results)
        else:
            with self._lock:
                self._pending.appendleft(t)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers.remove(w)
        self.restarts += 1
