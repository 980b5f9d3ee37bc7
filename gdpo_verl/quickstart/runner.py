"""Run a :class:`~gdpo_verl.quickstart.command.VerlCommand` owning everything it starts.

verl runs in its own session with a marker in its environment (:mod:`gdpo_verl.quickstart.process_tree`). Its
output goes, line by line, to a log file and to ``on_line``. The run ends when verl exits, on the timeout, on
SIGINT, SIGTERM or SIGHUP to this process, or when ``on_line`` raises :class:`StopRun` or ``BrokenPipeError`` (the
reader of our output went away); in every case every process of the run is stopped before :func:`run` returns.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gdpo_verl.quickstart.command import VerlCommand
from gdpo_verl.quickstart.process_tree import MARKER_VAR, ProcessTree, new_marker

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TAIL_LINES = 60
TIMEOUT = "timeout"
BROKEN_PIPE = "broken pipe"


class StopRun(Exception):
    """Raised (by ``on_line`` or a signal) to stop the run; the message says why."""


@dataclass
class RunResult:
    returncode: int  # verl's exit status, or 128 + signal number when the run was stopped by a signal
    wall_s: float
    log_path: Path
    peak_mem_mb: float | None = None  # peak PSS of all the run's processes; None: not measured (memory_error says why)
    memory_error: str | None = None
    tail: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the run was stopped before verl exited by itself (None: it exited)
    processes: int = 0  # how many processes the run had (verl, Ray and its workers)
    left: list[int] = field(default_factory=list)  # pids that could not be stopped


class _SignalsStopTheRun:
    """While armed, the first SIGINT/SIGTERM/SIGHUP raises :class:`StopRun` in the main thread; any later one (or one
    that arrives once disarmed, while the run is being stopped) is only recorded, so that stopping is never cut short.
    Outside the main thread signals are left alone."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.armed = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum: int, _frame: object) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.armed:
            self.armed = False
            raise StopRun(self.received[-1])

    def __enter__(self) -> _SignalsStopTheRun:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
            self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        for sig, old in self._previous.items():
            signal.signal(sig, old)


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _watch(tree: ProcessTree, done: threading.Event, every_s: float = 1.0) -> None:
    while not done.wait(every_s):
        tree.refresh()
        tree.measure()


def run(
    cmd: VerlCommand,
    log_path: Path,
    on_line: Callable[[str], None],
    timeout_s: float | None = None,
) -> RunResult:
    """Start ``cmd`` in its own session, write its output to ``log_path`` and pass each line to ``on_line``; return
    once verl and every process it started have ended."""
    start = time.monotonic()
    tail: list[str] = []
    stopped: str | None = None
    marker = new_marker()
    with _SignalsStopTheRun() as signals, open(log_path, "w") as log:
        proc = subprocess.Popen(
            list(cmd.argv),
            env={**cmd.environment(), MARKER_VAR: marker},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        tree = ProcessTree(proc.pid, marker)
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(tree, done), daemon=True)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
        watcher.start()
        reader.start()
        try:
            while True:
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    stopped = TIMEOUT
                    break
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    if proc.poll() is not None:  # verl exited; what it started may still hold its output open
                        break
                    continue
                if line is None:
                    break
                log.write(line)
                tail = (tail + [line.rstrip()])[-TAIL_LINES:]
                on_line(line.rstrip("\n"))
        except StopRun as e:
            stopped = str(e)
        except BrokenPipeError:
            stopped = BROKEN_PIPE
        finally:
            signals.armed = False
            done.set()
            tree.measure()
            left = tree.stop()
            proc.wait()
            watcher.join(timeout=5)
            reader.join(timeout=5)
            while not lines.empty():  # the last lines, written while the run stopped: kept in the log only
                line = lines.get()
                if line is not None:
                    log.write(line)
                    tail = (tail + [line.rstrip()])[-TAIL_LINES:]
    if stopped is None and signals.received:
        stopped = signals.received[0]
    return RunResult(
        returncode=_returncode(proc.returncode, stopped),
        wall_s=time.monotonic() - start,
        log_path=log_path,
        peak_mem_mb=tree.peak_mem_mb,
        memory_error=tree.memory_error,
        tail=tail,
        stopped=stopped,
        processes=len(tree.known),
        left=left,
    )


def _returncode(verl_returncode: int, stopped: str | None) -> int:
    """verl's exit status; 128 + the signal's number when a signal (or a broken pipe) stopped the run, 124 for the
    timeout (the conventions of shells and `timeout`)."""
    if stopped is None:
        return verl_returncode
    if stopped == TIMEOUT:
        return 124
    if stopped == BROKEN_PIPE:
        return 128 + signal.SIGPIPE.value
    if stopped in signal.Signals.__members__:
        return 128 + signal.Signals[stopped].value
    return verl_returncode or 1
