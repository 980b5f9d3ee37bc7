"""A process pool for reward calls with a real per-call timeout.

Each task is one sample's list of reward calls; a worker runs them in order (so calls of one sample can share a
cache, e.g. code pass rate and bug-free share one sandbox run). Up to ``depth`` tasks are in flight per worker (the
next one waits in the worker's pipe, so no round trip separates two tasks); a call's clock starts when the worker
reports that it started that task or finished the previous call, so waiting in the pipe costs no timeout budget.
A call that overruns its timeout gets its worker killed and replaced; the task's remaining calls and the worker's
queued tasks go back to the front of the queue. A crashed worker is handled the same way. Workers are plain
``python -m gdpo_verl.rewards._worker`` subprocesses (no fork of a threaded parent, no re-import of the parent's
``__main__``), started lazily.
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
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
PAGE = 4096


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
    pages: int = 0  # pipe pages its message may occupy until the worker has read it

    def fail_next(self, cause: str, message: str) -> bool:
        """NaN for the current call; True (and the future resolved) when that was the last call."""
        self.results[self.next] = CallOutcome(float("nan"), cause, message)
        self.next += 1
        if self.next < len(self.calls):
            return False
        self.future.set_result(self.results)
        return True


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
        try:  # Linux reports the pipe's size; elsewhere assume the smallest common one (16 KiB)
            import fcntl

            self.capacity = fcntl.fcntl(w1, fcntl.F_GETPIPE_SZ) // PAGE
        except (ImportError, AttributeError, OSError):
            self.capacity = 4
        self.send = Connection(w1, readable=False)
        self.recv = Connection(r2, writable=False)
        self.tasks: collections.deque[_Task] = collections.deque()  # in flight; tasks[0] runs (or is next)
        self.started = False  # whether the worker has read tasks[0]
        self.deadline = 0.0

    def unread_pages(self) -> int:
        return sum(t.pages for t in self.tasks) - (self.tasks[0].pages if self.started else 0)

    def next_head(self) -> None:
        # until the worker has read the task and imported its functions (start-up, first imports) a loose bound
        self.started = False
        if self.tasks:
            t = self.tasks[0]
            self.deadline = time.monotonic() + t.timeouts[t.next] + STARTUP_GRACE_S

    def kill(self) -> None:
        for c in (self.send, self.recv):
            c.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class RewardPool:
    """``submit(payload, calls, timeouts)`` -> Future[list[CallOutcome]]; ``max_workers=0`` runs calls inline.

    ``depth``: tasks in flight per worker (1 = one at a time). A task is queued behind another only when no worker
    is idle and the pipe has room for it (so the dispatcher never blocks on a busy worker); a queued task can wait
    behind a slow one while another worker idles, which delays the batch's end by at most one task.
    """

    def __init__(self, max_workers: int, depth: int = 2) -> None:
        self.max_workers = max_workers
        self.depth = max(1, depth)
        self._ids = itertools.count()
        self._lock = threading.RLock()  # _fail_worker may run inside _assign
        self._pending: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        self.restarts = 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        self._env = env
        # closes the wake pipe and kills the workers on close(), garbage collection or exit
        self._finalizer = weakref.finalize(self, RewardPool._shutdown, self._workers, (self._wake_r, self._wake_w))

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
            os.write(self._wake_w, b"x")  # under the lock: close() cannot have closed the pipe
        return fut

    def close(self) -> None:
        with self._lock:
            if not self._finalizer.alive:
                return
            self._closed = True
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            tasks = list(self._pending) + [t for w in self._workers for t in w.tasks]
            self._finalizer()
        self._pending.clear()
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(RuntimeError("RewardPool closed"))

    @staticmethod
    def _shutdown(workers: list[_Worker], wake_fds: tuple[int, int]) -> None:
        for w in list(workers):
            try:
                w.kill()
            except OSError:
                pass
        workers.clear()
        for fd in wake_fds:
            try:
                os.close(fd)
            except OSError:
                pass

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
                tasks = list(self._pending) + [t for w in self._workers for t in w.tasks]
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
            busy = [w for w in self._workers if w.tasks]
            now = time.monotonic()
            timeout = min((w.deadline - now for w in busy), default=None)
            ready = wait([self._wake_r] + [w.recv for w in busy], None if timeout is None else max(0.0, timeout))
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for w in busy:
                if w.recv in ready:
                    self._receive(w)
            now = time.monotonic()
            for w in [w for w in self._workers if w.tasks and now >= w.deadline]:
                t = w.tasks[0]
                self._fail_worker(w, "Timeout", f"call exceeded {t.timeouts[t.next]:g} s")

    def _pick(self, pages: int) -> _Worker | None:
        """An idle worker, else a new one, else the least loaded one with room in its pipe."""
        for w in [w for w in self._workers if not w.tasks]:
            if w.proc.poll() is None:
                return w
            self._fail_worker(w, "WorkerCrashed", "idle reward worker died")  # nothing of it is lost
        if len(self._workers) < self.max_workers:
            self._workers.append(_Worker(self._env))
            return self._workers[-1]
        room = [w for w in self._workers if len(w.tasks) < self.depth and w.unread_pages() + pages <= w.capacity]
        return min(room, key=lambda w: len(w.tasks), default=None)

    def _assign(self) -> None:
        while self._pending:
            task = self._pending[0]
            try:
                msg = pickle.dumps((task.id, task.payload, task.calls, task.next), pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # noqa: BLE001 - unpicklable payload: every remaining call fails
                self._pending.popleft()
                while not task.fail_next(type(e).__name__, str(e)[:500]):
                    pass
                continue
            task.pages = len(msg) // PAGE + 2  # upper bound (header and data may each start a page)
            w = self._pick(task.pages)
            if w is None:
                return
            self._pending.popleft()
            w.tasks.append(task)
            if len(w.tasks) == 1:
                w.next_head()
            try:
                w.send.send_bytes(msg)  # never blocks: the worker is idle or its pipe has room (see _pick)
            except OSError:  # the worker died: handled like a crash
                self._fail_worker(w, "WorkerCrashed", f"reward worker died (exit {w.proc.poll()})")

    def _receive(self, w: _Worker) -> None:
        try:
            while w.tasks and w.recv.poll():
                task_id, i, ok, value = w.recv.recv()
                t = w.tasks[0]
                if task_id != t.id:
                    continue
                if i < 0:  # task read and functions imported: the per-call clock starts now
                    w.started = True
                    w.deadline = time.monotonic() + t.timeouts[t.next]
                    continue
                t.results[i] = CallOutcome(value) if ok else CallOutcome(float("nan"), value[0], value[1])
                t.next = i + 1
                if t.next == len(t.calls):
                    w.tasks.popleft()
                    t.future.set_result(t.results)
                    w.next_head()
                else:
                    w.deadline = time.monotonic() + t.timeouts[t.next]
        except (EOFError, OSError):
            self._fail_worker(w, "WorkerCrashed", f"reward worker died (exit {w.proc.poll()})")

    def _fail_worker(self, w: _Worker, cause: str, message: str) -> None:
        """Kill and drop ``w``: its current call fails, the rest of its work goes back to the front of the queue."""
        w.kill()
        self._workers.remove(w)
        self.restarts += 1
        tasks = list(w.tasks)
        if tasks and tasks[0].fail_next(cause, message):
            tasks.pop(0)
        with self._lock:
            self._pending.extendleft(reversed(tasks))
