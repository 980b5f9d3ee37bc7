"""Running a command owning its whole process tree: stand-in process trees shaped like verl's (a daemon in its own
session, as Ray's are, with a child of its own), stopped on exit, timeout, signal and broken pipe."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from gdpo_verl.quickstart import runner
from gdpo_verl.quickstart.command import VerlCommand

# The root prints its pid, starts a daemon in a new session (which prints its pid and starts a child that prints its
# own), then lives ROOT_S seconds; daemon and child would live 120 s.
TREE = """
import os, subprocess, sys, time
print("pid", os.getpid(), flush=True)
child = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(120)"
daemon = f"import os, subprocess, sys, time; print('pid', os.getpid(), flush=True); "
daemon += f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(120)"
subprocess.Popen([sys.executable, "-c", daemon], start_new_session=True)
time.sleep(float(sys.argv[1]))
"""


def _alive(pid: int) -> bool:
    """From /proc, independently of the code under test: the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _run_tree(tmp_path: Path, root_s: float, on_line=None, timeout_s: float | None = None, until_pids: int = 3):
    """Run TREE; ``on_line`` is called once all three pids were printed. Returns (result, pids)."""
    pids: list[int] = []

    def collect(line: str) -> None:
        if line.startswith("pid "):
            pids.append(int(line.split()[1]))
        if on_line and len(pids) >= until_pids:
            on_line(line)

    cmd = VerlCommand((sys.executable, "-c", TREE, str(root_s)), {"GDPO_TEST_VAR": "1"})
    result = runner.run(cmd, tmp_path / "run.log", collect, timeout_s=timeout_s)
    return result, pids


def _wait_for(pred, timeout_s: float = 30.0) -> None:
    end = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < end:
        time.sleep(0.1)


def test_a_run_that_exits_leaves_no_process_and_its_output_is_logged(tmp_path):
    result, pids = _run_tree(tmp_path, root_s=3)
    assert len(pids) == 3 and result.stopped is None and result.returncode == 0
    assert [p for p in pids if _alive(p)] == [] and result.left == []
    assert result.processes >= 3  # root, the daemon (another session) and its child were all known
    assert result.wall_s < 30  # the daemons' 120 s were not waited for
    assert sorted(int(x.split()[1]) for x in (tmp_path / "run.log").read_text().splitlines()) == sorted(pids)
    assert result.peak_mem_mb is not None and result.peak_mem_mb > 1


def test_the_run_gets_its_environment(tmp_path):
    cmd = VerlCommand((sys.executable, "-c", "import os; print(os.environ['GDPO_TEST_VAR'])"), {"GDPO_TEST_VAR": "x7"})
    lines: list[str] = []
    assert runner.run(cmd, tmp_path / "l.log", lines.append).returncode == 0 and lines == ["x7"]


def test_timeout_stops_everything(tmp_path):
    result, pids = _run_tree(tmp_path, root_s=120, timeout_s=3)
    assert result.stopped == runner.TIMEOUT and result.returncode == 124
    assert len(pids) == 3 and [p for p in pids if _alive(p)] == []


def test_a_broken_pipe_stops_everything(tmp_path):
    def write(_line: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    result, pids = _run_tree(tmp_path, root_s=120, on_line=write)
    assert result.stopped == "broken pipe" and result.returncode == 128 + signal.SIGPIPE
    assert [p for p in pids if _alive(p)] == [] and result.wall_s < 60


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_this_process_stops_everything(tmp_path, sig):
    sent = threading.Event()

    def signal_once(_line: str) -> None:
        if not sent.is_set():
            sent.set()
            threading.Timer(0.2, os.kill, (os.getpid(), sig)).start()

    before = signal.getsignal(sig)
    result, pids = _run_tree(tmp_path, root_s=120, on_line=signal_once)
    assert result.stopped == sig.name and result.returncode == 128 + sig
    assert [p for p in pids if _alive(p)] == [] and result.wall_s < 60
    assert signal.getsignal(sig) is before  # the handler is ours only while the run lasts


def test_memory_that_cannot_be_read_is_reported_as_unmeasured_and_the_tree_is_still_stopped(tmp_path, monkeypatch):
    """psutil refusing to read memory (as under a hardened /proc) neither reads as 0 GiB nor stops the tracking."""

    def denied(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    result, pids = _run_tree(tmp_path, root_s=3)
    assert result.peak_mem_mb is None and "AccessDenied" in result.memory_error
    assert len(pids) == 3 and [p for p in pids if _alive(p)] == []


def test_a_process_found_only_by_its_marker_is_stopped(tmp_path):
    """A process of the run that is no descendant of verl's (started through another process, e.g. a Ray daemon
    asked to start a worker) is found by the marker in its environment."""
    from gdpo_verl.quickstart.process_tree import MARKER_VAR, ProcessTree

    marker = "test-marker-" + str(time.time_ns())
    env = {**os.environ, MARKER_VAR: marker}
    stranger = psutil.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env, start_new_session=True)
    unrelated = psutil.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        _wait_for(lambda: MARKER_VAR in _environ(stranger.pid))
        tree = ProcessTree(os.getpid() + 10**7, marker)  # a root that does not exist: nothing found through it
        tree.refresh()
        assert stranger.pid in tree.known and unrelated.pid not in tree.known
        assert tree.stop() == []
        stranger.wait(timeout=10)
        assert not _alive(stranger.pid) and _alive(unrelated.pid)
    finally:
        unrelated.kill()
        unrelated.wait()


def _environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_text(errors="replace")
    except OSError:
        return ""
