"""Every process a run started: found while it runs, measured, and stopped together.

verl's ``main_ppo`` starts a local Ray cluster whose daemons and workers leave its session, and outlive it when it is
killed (they are re-parented to init). So the tree is followed while it runs (a process once seen as a descendant
stays known after its parent dies) and every process carrying the run's marker in its environment (inherited by all
of them) is found by a scan of the process table. A process is identified by its pid and start time, so a pid reused
by an unrelated process is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import psutil

MARKER_VAR = "GDPO_VERL_RUN_MARKER"


def new_marker() -> str:
    """A value of :data:`MARKER_VAR` that names one run."""
    return f"{os.getpid()}-{time.time_ns()}"


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@dataclass
class ProcessTree:
    """The processes of the run started as ``root_pid`` (a session leader) with ``MARKER_VAR=marker``."""

    root_pid: int
    marker: str
    known: dict[int, float] = field(default_factory=dict)  # pid -> start time
    peak_mem_mb: float | None = None  # peak PSS (RSS where PSS is not available) of all of them together
    memory_error: str | None = None  # why a process could not be measured (the peak then leaves it out)

    def __post_init__(self) -> None:
        created = _create_time(self.root_pid)
        if created is not None:
            self.known[self.root_pid] = created

    def refresh(self) -> None:
        """Add the descendants of every known process and every process that carries the run's marker."""
        for pid in list(self.known):
            proc = self._live(pid)
            if proc is None:
                continue
            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                self._add(child)
        for proc in psutil.process_iter():
            if proc.pid in self.known or proc.pid == os.getpid():
                continue
            try:
                if proc.environ().get(MARKER_VAR) == self.marker:
                    self._add(proc)
            except psutil.Error:  # another user's process, or gone meanwhile
                continue

    def _add(self, proc: psutil.Process) -> None:
        try:
            self.known.setdefault(proc.pid, proc.create_time())
        except psutil.Error:
            pass

    def _live(self, pid: int) -> psutil.Process | None:
        """The process ``pid`` if it is still the one we saw start, and not a zombie."""
        try:
            proc = psutil.Process(pid)
            if proc.create_time() != self.known[pid] or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> list[psutil.Process]:
        return [p for p in (self._live(pid) for pid in list(self.known)) if p is not None]

    def measure(self) -> float | None:
        """Memory of all live processes now (MiB); updates the peak. A process that cannot be read is left out and
        the reason kept in :attr:`memory_error`."""
        total, measured = 0, 0
        for proc in self.alive():
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
                measured += 1
            except psutil.NoSuchProcess:  # ended meanwhile
                continue
            except psutil.Error as e:
                self.memory_error = f"{type(e).__name__} reading process {proc.pid}"
        if not measured:
            return None
        now = total / 2**20
        self.peak_mem_mb = max(self.peak_mem_mb or 0.0, now)
        return now

    def stop(self, grace_s: float = 5.0, give_up_s: float = 20.0) -> list[int]:
        """SIGTERM the run's session and each of its processes, SIGKILL what is left after ``grace_s``; repeat
        (processes may start while others stop) until none is alive or ``give_up_s`` passed. Returns the pids still
        alive then (none, unless a process cannot be killed)."""
        deadline = time.monotonic() + give_up_s
        self.refresh()
        try:
            os.killpg(self.root_pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        sig = signal.SIGTERM
        while True:
            procs = self.alive()
            if not procs:
                return []
            for proc in procs:
                try:
                    proc.send_signal(sig)
                except psutil.Error:
                    pass
            _, procs = psutil.wait_procs(procs, timeout=min(grace_s, max(0.1, deadline - time.monotonic())))
            self.refresh()
            if time.monotonic() >= deadline:
                return [p.pid for p in self.alive()]
            sig = signal.SIGKILL
