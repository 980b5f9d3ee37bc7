"""End to end: `gdpo-verl quickstart` owns the real verl run it starts, and its command.txt runs as written.

Each stop test starts a real quickstart (tiny model, 50 steps planned), waits until verl's training loop starts,
then stops it the way a user does: SIGTERM (`kill`), SIGINT (Ctrl-C, sent to the front-end's process group as a
terminal does), SIGHUP (the terminal closes) or a broken pipe (`| head` exits). It then checks, from /proc and
independently of the code under test, that no process of the run is left: every process verl and Ray started
inherits the test's own marker variable from the front-end's environment. About 1 min per run on 2 cores.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("verl")
pytestmark = [pytest.mark.e2e, pytest.mark.verl]

TEST_MARKER = "GDPO_E2E_TEST_MARKER"
START_TIMEOUT_S = 420  # assets, checker, Ray, workers and model until verl's training loop starts
STOP_LIMIT_S = 30  # from the signal to the front-end's exit, every process of the run stopped
TRAINING_STARTED = "training loop started"


def _marked(marker: str) -> list[str]:
    """Live (non-zombie) processes whose environment holds TEST_MARKER=marker: '<pid> <command>'."""
    found = []
    needle = f"{TEST_MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or not ours
            continue
        if state not in ("Z", "X"):
            found.append(f"{entry.name} {cmdline[:150]}")
    return found


def _kill_marked(marker: str) -> None:
    """Cleanup after a failed assertion, so that a broken run cannot outlive the test."""
    for line in _marked(marker):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except OSError:
            pass


def _env(marker: str) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", TEST_MARKER: marker}
    env.pop("GDPO_VERL_CPU", None)  # the quickstart sets it
    return env


class Quickstart:
    """A real `gdpo-verl quickstart` whose stdout is read here without threads (so that it can be closed)."""

    def __init__(self, out: Path, marker: str) -> None:
        cmd = [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--steps", "50", "--out", str(out)]
        cmd += ["--timeout", str(START_TIMEOUT_S + 120)]
        self.proc = subprocess.Popen(
            cmd, env=_env(marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.stdout = b""

    def wait_for(self, text: str, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while text.encode() not in self.stdout:
            left = end - time.monotonic()
            assert left > 0 and self.proc.poll() is None, f"no {text!r} in:\n{self.stdout.decode()[-3000:]}"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                self.stdout += os.read(fd, 65536)

    def finish(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the front-end's exit; returns (exit status, stderr)."""
        self.proc.wait(timeout=timeout_s)
        return self.proc.returncode, self.proc.stderr.read().decode(errors="replace")


@pytest.mark.parametrize(
    ("how", "code"),
    [("SIGTERM", 128 + 15), ("SIGINT", 128 + 2), ("SIGHUP", 128 + 1), ("broken pipe", 128 + 13)],
)
def test_a_stopped_quickstart_leaves_no_process_and_says_how_far_it_got(tmp_path, how, code):
    marker = f"{os.getpid()}-{time.time_ns()}"
    out = tmp_path / "run"
    run = Quickstart(out, marker)
    try:
        run.wait_for(TRAINING_STARTED, START_TIMEOUT_S)
        assert len(_marked(marker)) > 5  # the front-end, verl, Ray's daemons and workers: the scan sees them
        stopped_at = time.monotonic()
        if how == "broken pipe":
            run.proc.stdout.close()  # the reader went away; the front-end's next line meets a broken pipe
        elif how == "SIGINT":
            os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C does: the terminal's foreground process group
        else:
            run.proc.send_signal(getattr(signal, how))
        returncode, stderr = run.finish(STOP_LIMIT_S + (60 if how == "broken pipe" else 0))
        took = time.monotonic() - stopped_at
        left = _marked(marker)
        assert left == [], f"left behind after {how}: {left}"
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
        _kill_marked(marker)
    assert returncode == code, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    why = "its output pipe closed" if how == "broken pipe" else f"by {how}"
    assert last.startswith(f"gdpo-verl quickstart: stopped ({why}) "), stderr
    assert " before the first step (reached: " in last or " after step " in last, last
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == how and summary["returncode"] == code and summary["processes_left"] == []
    metrics_file = out / "metrics.jsonl"
    metrics = [x for x in metrics_file.read_text().splitlines() if x.strip()] if metrics_file.exists() else []
    assert summary["steps_done"] == len(metrics)  # this run's own metrics
    if how != "broken pipe":  # the broken pipe waits for the front-end's next line (the first step's)
        assert took < STOP_LIMIT_S, took
    print(f"{how}: front-end and {summary['processes']} processes ended {took:.1f} s after the stop; {last}")


def test_command_txt_runs_as_written(tmp_path):
    """The command.txt of a dry run, run by a shell with an empty environment (PATH and HOME only), trains."""
    out = tmp_path / "run"
    marker = f"{os.getpid()}-{time.time_ns()}"
    dry = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "quickstart", "--steps", "1", "--out", str(out), "--dry-run"],
        env=_env(marker),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0, dry.stderr
    bare = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), TEST_MARKER: marker}
    try:
        ran = subprocess.run(
            ["sh", str(out / "command.txt")],
            env=bare,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            start_new_session=True,
        )
    finally:
        _kill_marked(marker)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert [r["step"] for r in records] == [1]
    assert records[0]["data"]["gdpo/impl"] == 1.0  # GDPO from this plugin, on the CPU platform the file switches on
    assert sorted(p.name for p in (out / "rollouts").glob("*.jsonl")) == ["1.jsonl"]
