"""Run untrusted Python in a throw-away sandbox process.

Layers (see docs/rewards.md, "Sandbox"):
- always: a fresh temporary work directory (deleted afterwards), a scrubbed environment, ``python -I``, rlimits set in
  the child before the code runs (CPU, address space, file size, open files, process count, no core), an audit hook
  refusing sockets, new programs (exec/spawn/subprocess), ctypes and writes outside the work directory; the parent
  enforces wall time and output size and kills the whole process group;
- as root with ``unshare``: new network namespace (no interface but a down loopback), pid namespace (killing its
  PID 1 kills every descendant), mount namespace with fresh /proc and tmpfs over /tmp, /var/tmp, /dev/shm,
  /run/lock, and the program runs as a fresh unprivileged uid — root ignores RLIMIT_NPROC, an unprivileged uid
  does not, and a per-run uid makes the count per run.
"""

from __future__ import annotations

import itertools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
_UID_BASE = 100_000
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 1024
    file_mb: int = 16
    max_files: int = 64
    nproc: int = 16
    output_bytes: int = 1 << 20  # stdout + stderr kept by the parent; more kills the run
    tmpfs_mb: int = 16


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    output_truncated: bool = False
    wall_s: float = 0.0
    isolation: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_truncated


@lru_cache(maxsize=1)
def isolation_mode() -> str:
    """``namespaces`` (root + working unshare), else ``rlimits`` (rlimits + audit hook only)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or os.environ.get("GDPO_SANDBOX_NO_NAMESPACES"):
        return "rlimits"
    try:
        probe = subprocess.run(
            [unshare, "--net", "--pid", "--fork", "--mount-proc", "true"], timeout=10, capture_output=True
        )
    except (OSError, subprocess.SubprocessError):
        return "rlimits"
    return "namespaces" if probe.returncode == 0 else "rlimits"


def _next_uid() -> int:
    with _uid_lock:
        n = next(_uid_counter) % 16
    return _UID_BASE + (os.getpid() % 65536) * 16 + n


def _scrubbed_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
    }


def run_python(
    code: str,
    stdin: str = "",
    limits: Limits | None = None,
    files: dict[str, str] | None = None,
    workdir_parent: str | None = None,
) -> SandboxResult:
    """Run ``code`` as ``__main__`` in a new sandbox; ``files`` are written into its work directory first."""
    limits = limits or Limits()
    mode = isolation_mode()
    workdir = tempfile.mkdtemp(prefix="gdpo_sbx_", dir=workdir_parent)
    try:
        program = os.path.join(workdir, "main.py")
        Path(program).write_text(code)
        for name, text in (files or {}).items():
            Path(workdir, name).write_text(text)
        uid = _next_uid() if os.geteuid() == 0 else None  # root ignores RLIMIT_NPROC: never run code as root
        if uid is not None:
            os.chmod(workdir, 0o700)
            for p in Path(workdir).iterdir():
                os.chown(p, uid, uid)
            os.chown(workdir, uid, uid)
        spec = {
            "workdir": workdir,
            "program": program,
            "limits": asdict(limits),
            "uid": uid,
            "namespaced": mode == "namespaces",
        }
        cmd = [sys.executable, "-I", str(LAUNCHER), json.dumps(spec)]
        if mode == "namespaces":
            cmd = [
                shutil.which("unshare") or "unshare",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "--",
                *cmd,
            ]
        result = _communicate(cmd, workdir, stdin.encode(), limits)
        result.isolation = mode
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _communicate(cmd: list[str], workdir: str, stdin: bytes, limits: Limits) -> SandboxResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_scrubbed_env(workdir),
        cwd=workdir,
        start_new_session=True,
        close_fds=True,
    )
    out: dict[int, bytearray] = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        os.set_blocking(f.fileno(), False)
        sel.register(f.fileno(), selectors.EVENT_READ)
    stdin_fd = proc.stdin.fileno()
    if stdin:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    pending, total, timed_out, truncated = memoryview(stdin), 0, False, False
    try:
        while sel.get_map():
            left = limits.wall_s - (time.monotonic() - start)
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                fd = key.fd
                if fd == stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                total += len(chunk)
                out[fd] += chunk
            if total > limits.output_bytes:
                truncated = True
                break
        if not (timed_out or truncated):
            try:
                proc.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        if proc.poll() is None or timed_out or truncated:
            _kill_group(proc)
        sel.close()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f and not f.closed:
                f.close()
    stdout = bytes(out[next(iter(out))])[: limits.output_bytes]
    stderr = bytes(list(out.values())[1])[: limits.output_bytes]
    return SandboxResult(
        returncode=proc.returncode,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        timed_out=timed_out,
        output_truncated=truncated,
        wall_s=time.monotonic() - start,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # unshare dies; --kill-child SIGKILLs the namespace's PID 1
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
