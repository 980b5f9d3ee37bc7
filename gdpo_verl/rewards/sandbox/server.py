"""Parent side of the sandbox server: start it, send requests, read answers with a deadline, reuse warm servers.

One server serves one request at a time; a process keeps a small pool of idle servers (one per concurrent caller).
A server that misses its deadline, dies or answers garbage is killed with its whole namespace and not reused.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import cgroups, wire
from .probe import NO_SECCOMP_MESSAGE, UNSHARE_FLAGS, WeakSandboxError, isolation_mode, weak_allowed

logger = logging.getLogger("gdpo_verl.rewards.sandbox")
LAUNCHER = Path(__file__).with_name("launcher.py")
_UID_BASE = 100_000
_counter = itertools.count()
_warned: set[str] = set()
_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


class SandboxUnavailable(RuntimeError):
    """The sandbox server could not start, died, or did not answer in time."""


def warn_once(key: str, msg: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(msg, *args)


class SandboxServer:
    def __init__(self, packages: tuple[str, ...] = ()) -> None:
        n = next(_counter)
        self.packages = packages
        self.namespaced = isolation_mode() == "namespaces"
        root = os.geteuid() == 0
        self.uid = _UID_BASE + (os.getpid() % 65536) * 16 + n % 16 if root else None
        self.cgroup: dict | None = None
        self.proc: subprocess.Popen | None = None
        self._err = tempfile.TemporaryFile()  # before the cgroup: a failure here leaves nothing behind
        try:
            self._start(n, root)
        except BaseException:
            self.close()
            raise

    def _start(self, n: int, root: bool) -> None:
        name = f"{cgroups.PREFIX}{cgroups.owner_tag()}_{os.getpid()}_{n}"
        self.cgroup, why = cgroups.create(name) if root else (None, "not root")
        if self.cgroup is None:
            warn_once(
                "cgroup",
                "sandbox: no per-sandbox cgroup (%s); memory and process limits fall back to per-process rlimits and "
                "concurrent sandboxes share the CPU per process",
                why,
            )
        elif "cpu" not in self.cgroup["dirs"]:
            warn_once("cpu", "sandbox: no cpu cgroup controller; concurrent sandboxes share the CPU per process")
        cfg = {"uid": self.uid, "namespaced": self.namespaced, "cgroup": self.cgroup, "packages": list(self.packages)}
        cmd = [sys.executable, "-I", str(LAUNCHER), json.dumps(cfg)]
        if self.namespaced:
            cmd = [shutil.which("unshare") or "unshare", *UNSHARE_FLAGS, "--kill-child", "--", *cmd]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
                env=_ENV,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise SandboxUnavailable(f"cannot start the sandbox server: {e}") from None
        ready = self._read(time.monotonic() + 60)
        if not ready.get("ready"):
            raise SandboxUnavailable(f"sandbox server failed to start: {ready.get('error')}")
        self.info = ready
        if not ready.get("seccomp"):
            if not weak_allowed():
                raise WeakSandboxError(NO_SECCOMP_MESSAGE.format(why=ready.get("seccomp_error")))
            why = ready.get("seccomp_error")
            warn_once("seccomp", "sandbox: no seccomp filter (%s), allowed by allow_weak_sandbox", why)

    def stderr_tail(self) -> str:
        try:
            self._err.seek(0)
            return self._err.read()[-2000:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _read(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()

        def exact(n: int) -> bytes:
            buf = bytearray()
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxUnavailable("sandbox server did not answer in time")
                if not select.select([fd], [], [], left)[0]:
                    continue
                chunk = os.read(fd, n - len(buf))
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise SandboxUnavailable(
                        f"sandbox server exited ({self.proc.returncode}): {self.stderr_tail().strip()[-500:]}"
                    )
                buf += chunk
            return bytes(buf)

        (size,) = struct.unpack(">I", exact(4))
        if size > wire.MAX_FRAME:
            raise SandboxUnavailable(f"sandbox server sent a frame of {size} bytes")
        return json.loads(exact(size))

    def request(self, req: dict, timeout_s: float) -> dict:
        try:
            wire.write_frame(self.proc.stdin.fileno(), req)
        except OSError as e:
            raise SandboxUnavailable(f"sandbox server is gone: {e}") from None
        return self._read(time.monotonic() + timeout_s)

    def close(self) -> None:
        """Kill the server, its zygote and every case process (the namespace dies with its PID 1), wait until the
        cgroup is empty and removed."""
        if self.proc is None:
            cgroups.remove(self.cgroup)
            self._err.close()
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # unshare dies; --kill-child kills the namespace's PID 1
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        work_root = getattr(self, "info", {}).get("work_root")
        if work_root:  # the weak fallback's work directories on the host (the killed server could not remove them)
            try:
                shutil.rmtree(work_root, ignore_errors=True)
            except RecursionError:
                pass
        for f in (self.proc.stdin, self.proc.stdout, self._err):
            try:
                f.close()
            except OSError:
                pass
        for _ in range(100):  # what is left in the cgroup (weak fallback: case processes outside the group)
            if self.cgroup is None:
                break
            try:
                left = cgroups.procs(self.cgroup)
            except OSError:
                left = []
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cgroups.remove(self.cgroup)
            if not any(os.path.isdir(d) for d in self.cgroup["dirs"].values()):
                break
            time.sleep(0.01)


_lock = threading.Lock()
_idle: dict[str, list[SandboxServer]] = {}
_owner = os.getpid()


def _acquire(packages: tuple[str, ...] = ()) -> SandboxServer:
    global _owner
    with _lock:
        if _owner != os.getpid():  # a forked copy of this module: the servers belong to the parent
            _idle.clear()
            _owner = os.getpid()
        pool = _idle.setdefault((isolation_mode(), packages), [])
        if pool:
            return pool.pop()
    return SandboxServer(packages)


def _release(server: SandboxServer) -> None:
    with _lock:
        if _owner == os.getpid():
            _idle.setdefault(("namespaces" if server.namespaced else "rlimits", server.packages), []).append(server)
            return
    server.close()


def run_request(req: dict, timeout_s: float, packages: tuple[str, ...] = ()) -> dict:
    """Send one request to a warm server (started on demand) and return its answer. A server that misses the
    deadline, fails, or reports that a case left something behind (``retire``) is killed with every case process
    before this returns, and never serves again. ``packages``: the top-level packages the code may import."""
    server = _acquire(packages)
    try:
        resp = server.request(req, timeout_s)
    except BaseException:
        server.close()
        raise
    if "error" in resp or resp.get("retire"):
        server.close()
    else:
        _release(server)
    return resp


def describe(packages: tuple[str, ...] = ()) -> dict:
    """What a sandbox server here actually got: isolation mode, cgroup version (None: rlimits only), cpu controller,
    seccomp, what its root binds."""
    server = _acquire(packages)
    info = {
        "isolation": "namespaces" if server.namespaced else "rlimits",
        "cgroup": None if server.cgroup is None else server.cgroup["version"],
        "cpu_controller": server.cgroup is not None and "cpu" in server.cgroup["dirs"],
        "seccomp": bool(server.info.get("seccomp")),
        "unprivileged_uid": server.uid is not None,
        "root": list(server.info.get("root") or []),
    }
    _release(server)
    return info


def shutdown() -> None:
    """Stop every idle server of this process."""
    with _lock:
        servers = [s for pool in _idle.values() for s in pool] if _owner == os.getpid() else []
        _idle.clear()
    for s in servers:
        s.close()


atexit.register(shutdown)
