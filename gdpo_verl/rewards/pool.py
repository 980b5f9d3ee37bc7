"""A process pool for reward calls with a real per-call timeout, which no caller, worker or operating-system
event can stop.

Each task is one sample's list of reward calls; a worker runs them in order (so calls of one sample can share a
cache, e.g. code pass rate and bug-free share one sandbox run). Up to ``depth`` tasks are in flight per worker (the
next one waits in the worker's pipe, so no round trip separates two tasks); a call's clock starts when the worker
reports that it started that task or finished the previous call, so waiting in the pipe costs no timeout budget.
A call that overruns its timeout gets its worker killed and replaced; the task's remaining calls and the worker's
queued tasks go back to the front of the queue. A crashed worker is handled the same way. Workers are plain
``python -m gdpo_verl.rewards._worker`` subprocesses (no fork of a threaded parent, no re-import of the parent's
``__main__``), started lazily.

What keeps the pool alive:
- one dispatcher thread owns every worker; ``submit`` only appends to an inbox under a lock held for no blocking
  call, and every pipe to and from a worker is non-blocking (a stopped worker cannot stall the dispatcher, so every
  per-call timeout holds);
- a caller may cancel its Future at any time (``asyncio.wait_for``, a TaskGroup shutting down): a task not yet
  sent is dropped, a running one finishes and its result is discarded;
- a worker that cannot be started (out of descriptors, processes or memory) is retried with backoff; while no
  worker runs, a task waiting longer than its call's timeout gets NaN (cause ``WorkerUnavailable``) for its
  remaining calls; after ``unavailable_s`` without any worker, waiting and new tasks raise
  :class:`RewardPoolUnavailable` naming the cause, until a worker starts again;
- an unexpected error inside the dispatcher is logged and the loop goes on.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from ._worker import describe_exception, evaluate

logger = logging.getLogger("gdpo_verl.rewards")

STARTUP_GRACE_S = 60.0  # a new worker's start-up, or a function's first import, before the call's clock starts
READ_GRACE_S = 5.0  # a running worker must read its next task within this (plus the call's timeout)
CLOSE_GRACE_S = 5.0  # close(): how long workers get to exit by themselves (their sandbox servers with them)
BACKOFF_S = (0.05, 2.0)  # retrying a failed worker start: first and longest wait
_HEADER = struct.Struct("!i")  # multiprocessing.connection's framing: the worker reads with Connection.recv()


class RewardPoolUnavailable(RuntimeError):
    """No reward worker could run for ``unavailable_s``: the run cannot be scored."""


@dataclass
class CallOutcome:
    value: float
    cause: str | None = None  # exception type name, "Timeout", "WorkerCrashed", ...; None when the call succeeded
    message: str = ""


def _settle(fut: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve ``fut`` unless its caller cancelled it (then the result is dropped)."""
    try:
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)
    except InvalidStateError:
        pass


@dataclass
class _Task:
    id: int
    payload: dict[str, Any]
    calls: list[tuple[str, dict[str, Any]]]
    timeouts: list[float]
    future: Future
    results: list[CallOutcome | None] = field(default_factory=list)
    next: int = 0
    queued_at: float = 0.0  # when it last entered the queue
    sent: bool = False  # handed to a worker once (its future is running: the caller can no longer cancel it)

    def fail_next(self, cause: str, message: str) -> bool:
        """NaN for the current call; True (and the future resolved) when that was the last call."""
        self.results[self.next] = CallOutcome(float("nan"), cause, message)
        self.next += 1
        if self.next < len(self.calls):
            return False
        _settle(self.future, self.results)
        return True

    def fail_rest(self, cause: str, message: str) -> None:
        while not self.fail_next(cause, message):
            pass


class _Worker:
    def __init__(self, env: dict[str, str]) -> None:
        fds: list[int] = []
        try:
            r1, w1 = os.pipe()
            fds += [r1, w1]
            r2, w2 = os.pipe()
            fds += [r2, w2]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gdpo_verl.rewards._worker", str(r1), str(w2)],
                pass_fds=(r1, w2),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        os.close(r1)
        os.close(w2)
        os.set_blocking(w1, False)
        os.set_blocking(r2, False)
        self.send_fd, self.recv_fd = w1, r2
        self.out = bytearray()  # framed tasks not yet written to the pipe
        self.inbuf = bytearray()  # bytes read from the worker, not yet a whole message
        self.tasks: collections.deque[_Task] = collections.deque()  # in flight; tasks[0] runs (or is next)
        self.started = False  # whether the call's clock runs (the worker read tasks[0] and imported its functions)
        self.booted = False  # whether the worker has ever answered (until then its start-up counts)
        self.deadline = 0.0

    def next_head(self) -> None:
        self.started = False
        if self.tasks:
            t = self.tasks[0]
            self.deadline = time.monotonic() + t.timeouts[t.next] + (READ_GRACE_S if self.booted else STARTUP_GRACE_S)

    def flush(self) -> None:
        """Write what the pipe takes now (never blocks). Raises OSError when the worker is gone."""
        while self.out:
            try:
                n = os.write(self.send_fd, self.out)
            except BlockingIOError:
                return
            del self.out[:n]

    def messages(self) -> list[Any]:
        """Every whole message the worker has written so far (never blocks). EOFError when it closed its end."""
        while True:
            try:
                chunk = os.read(self.recv_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                raise EOFError
            self.inbuf += chunk
        out = []
        while len(self.inbuf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(self.inbuf)
            if n < 0:
                raise OSError(f"reward worker sent a message header of {n}")
            if len(self.inbuf) < _HEADER.size + n:
                break
            out.append(pickle.loads(self.inbuf[_HEADER.size : _HEADER.size + n]))
            del self.inbuf[: _HEADER.size + n]
        return out

    def close_pipes(self) -> None:
        for fd in (self.send_fd, self.recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.send_fd = self.recv_fd = -1

    def kill(self) -> None:
        """SIGKILL (a stopped process dies too); the caller reaps it later, without waiting now."""
        self.close_pipes()
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass


def _stop_workers(workers: list[_Worker], dying: list[subprocess.Popen], grace_s: float) -> None:
    """Let idle workers exit by themselves (end of input: they stop their idle sandbox servers on the way out, and
    no SIGKILL interrupts that) for up to ``grace_s``; SIGKILL busy ones at once (a sandbox server in use cleans up
    after itself when its caller is gone) and whatever is left; reap everything (bounded)."""
    for w in workers:
        if w.tasks:
            w.kill()
        else:
            w.close_pipes()
    procs = [w.proc for w in workers]
    workers.clear()
    deadline = time.monotonic() + grace_s
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.01)
    for p in procs + dying:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in procs + dying:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:  # e.g. frozen by a cgroup v1 freezer: left to the system
            logger.warning("reward worker %d did not exit after SIGKILL", p.pid)
    dying.clear()


class RewardPool:
    """``submit(payload, calls, timeouts)`` -> Future[list[CallOutcome]]; ``max_workers=0`` runs calls inline.

    ``depth``: tasks in flight per worker (1 = one at a time). A task is queued behind another only when no worker
    is idle; a queued task can wait behind a slow one while another worker idles, which delays the batch's end by
    at most one task. ``unavailable_s``: how long the pool may have no worker at all before tasks raise.
    """

    def __init__(self, max_workers: int, depth: int = 2, unavailable_s: float = 120.0) -> None:
        self.max_workers = max_workers
        self.depth = max(1, depth)
        self.unavailable_s = unavailable_s
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards _inbox and _closed only; never held across a blocking call
        self._inbox: list[_Task] = []
        self._closed = False
        self._pending: collections.deque[_Task] = collections.deque()  # dispatcher thread only, like the rest
        self._workers: list[_Worker] = []
        self._dying: list[subprocess.Popen] = []  # killed, not yet reaped
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.restarts = 0
        self.spawn_failures = 0
        self.internal_errors = 0
        self._spawn_error: str | None = None  # why the last worker start failed; None once one starts
        self._no_worker_since: float | None = None  # since when tasks wait and no worker can run
        self._retry_at = 0.0
        self._backoff = BACKOFF_S[0]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
        self._env = env
        # on close(), garbage collection or exit: stops the workers and closes the wake pipe
        self._finalizer = weakref.finalize(
            self, RewardPool._shutdown, self._workers, self._dying, (self._wake_r, self._wake_w)
        )

    def submit(self, payload: dict[str, Any], calls: list[tuple[str, dict[str, Any]]], timeouts: list[float]) -> Future:
        fut: Future = Future()
        task = _Task(next(self._ids), payload, calls, timeouts, fut, [None] * len(calls))
        if self.max_workers <= 0:
            self._run_inline(task)
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("RewardPool is closed")
            self._inbox.append(task)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="gdpo-reward-pool", daemon=True)
                self._thread.start()
            self._wake()
        return fut

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # already full of wake-ups
            pass

    def close(self) -> None:
        """Resolve every unfinished task with RuntimeError, stop the workers (bounded), release every descriptor."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._wake()
        if thread is not None:
            thread.join(timeout=CLOSE_GRACE_S + 15)
        self._drain_on_close()

    def _drain_on_close(self) -> None:
        with self._lock:
            tasks = self._inbox + list(self._pending) + [t for w in self._workers for t in w.tasks]
            self._inbox = []
        self._pending.clear()
        for t in tasks:
            _settle(t.future, error=RuntimeError("RewardPool closed"))
        self._finalizer()

    @staticmethod
    def _shutdown(workers: list[_Worker], dying: list[subprocess.Popen], wake_fds: tuple[int, int]) -> None:
        _stop_workers(workers, dying, CLOSE_GRACE_S)
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
                task.results[i] = CallOutcome(float("nan"), *describe_exception(e))
        _settle(task.future, task.results)

    # --- dispatcher thread -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        failing_since: float | None = None
        while True:
            with self._lock:
                closed = self._closed
                new, self._inbox = self._inbox, []
            now = time.monotonic()
            for t in new:
                t.queued_at = now
            self._pending.extend(new)
            if new and self._no_worker_since is not None and now - self._no_worker_since > self.unavailable_s:
                self._retry_at = now  # new work after a long outage: try to start a worker at once
            if closed:
                self._drain_on_close()
                return
            try:
                self._step()
                failing_since = None
            except Exception as e:  # noqa: BLE001 - the dispatcher never dies; a lasting fault fails the tasks
                self.internal_errors += 1
                now = time.monotonic()
                failing_since = failing_since or now
                if self.internal_errors == 1:
                    logger.exception("reward pool: unexpected error in the dispatcher (it goes on)")
                if now - failing_since > self.unavailable_s:
                    self._fail_pending_unavailable(
                        "the dispatcher keeps failing: {}: {}".format(*describe_exception(e))
                    )
                time.sleep(0.05)

    def _step(self) -> None:
        self._reap()
        self._assign()
        self._serve_starved()
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd: dict[int, _Worker] = {}
        for w in self._workers:
            if w.tasks:
                poller.register(w.recv_fd, select.POLLIN)
                by_fd[w.recv_fd] = w
            if w.out:
                poller.register(w.send_fd, select.POLLOUT)
                by_fd[w.send_fd] = w
        now = time.monotonic()
        deadlines = [w.deadline for w in self._workers if w.tasks]
        if self._pending and self._spawn_error is not None:
            deadlines.append(self._retry_at)
            deadlines += [t.queued_at + t.timeouts[t.next] for t in self._pending]
        if self._dying:
            deadlines.append(now + 0.5)
        timeout_ms = None if not deadlines else max(0, int((min(deadlines) - now) * 1000) + 1)
        events = poller.poll(timeout_ms)
        ready: set[_Worker] = set()
        for fd, _ in events:
            if fd == self._wake_r:
                os.read(self._wake_r, 4096)
            elif fd in by_fd:
                ready.add(by_fd[fd])
        for w in ready:
            if w in self._workers:
                self._exchange(w)
        now = time.monotonic()
        for w in [w for w in self._workers if w.tasks and now >= w.deadline]:
            t = w.tasks[0]
            what = f"call exceeded {t.timeouts[t.next]:g} s" if w.started else "the worker did not read the task"
            self._fail_worker(w, "Timeout", what)

    def _reap(self) -> None:
        self._dying[:] = [p for p in self._dying if p.poll() is None]  # the finalizer holds this list

    def _spawn(self) -> _Worker | None:
        now = time.monotonic()
        if self._spawn_error is not None and now < self._retry_at:
            return None
        try:
            w = _Worker(self._env)
        except Exception as e:  # noqa: BLE001 - out of descriptors, processes or memory: retried with backoff
            self.spawn_failures += 1
            if self._spawn_error is None:
                logger.warning("reward pool: cannot start a reward worker (%s: %s); retrying", *describe_exception(e))
            self._spawn_error = "{}: {}".format(*describe_exception(e))
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, BACKOFF_S[1])
            return None
        if self._spawn_error is not None:
            logger.warning("reward pool: reward workers start again (after %d failed starts)", self.spawn_failures)
        self._spawn_error, self._backoff, self._no_worker_since = None, BACKOFF_S[0], None
        self._workers.append(w)
        return w

    def _pick(self) -> _Worker | None:
        """An idle worker, else a new one, else the least loaded one with room for another task."""
        for w in [w for w in self._workers if not w.tasks]:
            if w.proc.poll() is None:
                return w
            self._fail_worker(w, "WorkerCrashed", "idle reward worker died")  # nothing of it is lost
        if len(self._workers) < self.max_workers:
            w = self._spawn()
            if w is not None:
                return w
        room = [w for w in self._workers if len(w.tasks) < self.depth]
        return min(room, key=lambda w: len(w.tasks), default=None)

    def _assign(self) -> None:
        while self._pending:
            task = self._pending[0]
            if not task.sent and not task.future.set_running_or_notify_cancel():
                self._pending.popleft()  # cancelled by its caller before it ran: dropped
                continue
            task.sent = True
            try:
                msg = pickle.dumps((task.id, task.payload, task.calls, task.next), pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # noqa: BLE001 - unpicklable payload: every remaining call fails
                self._pending.popleft()
                task.fail_rest(*describe_exception(e))
                continue
            w = self._pick()
            if w is None:
                return
            self._pending.popleft()
            w.tasks.append(task)
            if len(w.tasks) == 1:
                w.next_head()
            w.out += _HEADER.pack(len(msg)) + msg
            try:
                w.flush()
            except OSError:  # the worker died: handled like a crash
                self._fail_worker(w, "WorkerCrashed", f"reward worker died (exit {w.proc.poll()})")

    def _serve_starved(self) -> None:
        """While no worker can run: NaN for tasks that waited past their call's timeout; after ``unavailable_s``
        an error for every waiting task."""
        if self._spawn_error is None or any(w.proc.poll() is None for w in self._workers):
            self._no_worker_since = None
            return
        if not self._pending:
            return
        now = time.monotonic()
        self._no_worker_since = self._no_worker_since or now
        if now - self._no_worker_since > self.unavailable_s:
            self._fail_pending_unavailable(f"no reward worker could be started: {self._spawn_error}")
            return
        keep: collections.deque[_Task] = collections.deque()
        for t in self._pending:
            if now - max(t.queued_at, self._no_worker_since) > t.timeouts[t.next]:
                t.fail_rest("WorkerUnavailable", f"no reward worker could be started: {self._spawn_error}")
            else:
                keep.append(t)
        self._pending = keep

    def _fail_pending_unavailable(self, cause: str) -> None:
        tasks = list(self._pending)
        self._pending.clear()
        if tasks:
            logger.error("reward pool: cannot score for %g s: %s", self.unavailable_s, cause)
        for t in tasks:
            _settle(
                t.future,
                error=RewardPoolUnavailable(
                    f"reward pool: no reward could be computed for {self.unavailable_s:g} s: {cause}. The run "
                    "cannot be scored; free the resource named (descriptors, processes, memory) and restart."
                ),
            )

    def _exchange(self, w: _Worker) -> None:
        try:
            w.flush()
            for task_id, i, ok, value in w.messages() if w.tasks else []:
                if not w.tasks or task_id != w.tasks[0].id:
                    continue
                t = w.tasks[0]
                w.booted = True
                if i == -2:  # task read, a function is being imported for the first time
                    w.deadline = time.monotonic() + t.timeouts[t.next] + STARTUP_GRACE_S
                    continue
                if i == -1:  # task read and functions imported: the per-call clock starts now
                    w.started = True
                    w.deadline = time.monotonic() + t.timeouts[t.next]
                    continue
                t.results[i] = CallOutcome(value) if ok else CallOutcome(float("nan"), value[0], value[1])
                t.next = i + 1
                if t.next == len(t.calls):
                    w.tasks.popleft()
                    _settle(t.future, t.results)
                    w.next_head()
                else:
                    w.deadline = time.monotonic() + t.timeouts[t.next]
        except (EOFError, OSError):
            self._fail_worker(w, "WorkerCrashed", f"reward worker died (exit {w.proc.poll()})")
        except Exception as e:  # noqa: BLE001 - a message that does not decode: the worker is not trusted further
            self._fail_worker(
                w, "WorkerCrashed", "reward worker sent a bad message: {}: {}".format(*describe_exception(e))
            )

    def _fail_worker(self, w: _Worker, cause: str, message: str) -> None:
        """Kill and drop ``w``: its current call fails, the rest of its work goes back to the front of the queue."""
        w.kill()
        self._dying.append(w.proc)
        self._workers.remove(w)
        self.restarts += 1
        tasks = list(w.tasks)
        if tasks and tasks[0].fail_next(cause, message):
            tasks.pop(0)
        now = time.monotonic()
        for t in tasks:
            t.queued_at = now
        self._pending.extendleft(reversed(tasks))
