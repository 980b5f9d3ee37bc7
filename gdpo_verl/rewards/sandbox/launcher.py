"""Sandbox server: ``python -I launcher.py CONFIG_JSON``, started by :mod:`.server` (stdlib + pyseccomp only).

With namespaces it is PID 1 of fresh mount, pid, net, ipc and uts namespaces (``unshare``). At start it hides the
host's world-writable directories behind size-limited tmpfs mounts, makes what Python needs reachable read-only
(a 0700 ancestor such as /root is replaced by a tmpfs holding read-only binds of the needed children only), and
compiles the seccomp filter. Then it serves requests (frames on its stdin, answers on its stdout: pipes no sandboxed
process ever holds). Each test case runs in a child forked from this warm process, which, before the program runs:
joins the per-sandbox cgroup, gets fresh stdin/stdout/stderr/record pipes and closes every other fd, moves into its
own work directory on the tmpfs, sets rlimits, becomes an unprivileged uid (the capability bounding set is already
empty: the server drops it at start), sets no-new-privs, loads the seccomp filter and installs the audit hook. This
process never runs untrusted code and never holds an expected output; it reports what each child printed, its
record and how it ended.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import shutil
import signal
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit  # noqa: E402
import cgroups  # noqa: E402
import kernel  # noqa: E402
import runner  # noqa: E402
import wire  # noqa: E402

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_WORK_NAME = ".gdpo_work"
_MAX_FD = max(1024, os.sysconf("SC_OPEN_MAX"))
# Imported once here, so that every forked case has them without reading the disk (and without needing to read
# a Python installation its uid cannot see, in the weak fallback).
PRELOAD = (
    "array", "bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "operator", "random", "re", "statistics", "string", "typing",
)  # fmt: skip


def _mount(libc, src: str | None, dst: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [None if x is None else x.encode() for x in (src, dst, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} -> {dst}: {os.strerror(err)}")


def _needed_paths() -> set[str]:
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, *[p for p in sys.path if os.path.isdir(p)]}
    return {os.path.realpath(p) for p in paths}


def isolate_fs(tmpfs_mb: int) -> None:
    """tmpfs over the world-writable dirs and over 0700 ancestors of what Python needs; needed paths bound back
    read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    targets: dict[str, list[str]] = {d: [] for d in _WRITABLE_DIRS if os.path.isdir(d) and not os.path.islink(d)}
    for real in sorted(_needed_paths()):
        parts = real.split(os.sep)
        for i in range(2, len(parts)):
            anc = os.sep.join(parts[:i]) or "/"
            if anc in targets or not os.stat(anc).st_mode & stat.S_IXOTH:
                child = os.path.join(anc, parts[i])
                if child not in targets.setdefault(anc, []):
                    targets[anc].append(child)
                break
    for parent, children in targets.items():
        fds = [(c, os.open(c, os.O_PATH)) for c in children]
        mode = "1777" if parent in _WRITABLE_DIRS else "755"
        _mount(libc, "tmpfs", parent, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={tmpfs_mb}m,mode={mode}")
        for child, fd in fds:
            os.makedirs(child, mode=0o755, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", child, None, _MS_BIND | _MS_REC, None)
            _mount(libc, None, child, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)
            os.close(fd)


class Server:
    def __init__(self, cfg: dict) -> None:
        self.uid: int | None = cfg.get("uid")
        self.namespaced = bool(cfg.get("namespaced"))
        self.cgroup: dict | None = cfg.get("cgroup")
        self.cg_limits: tuple[int, int] | None = None
        for name in PRELOAD:
            __import__(name)
        self.seccomp, self.seccomp_error = kernel.build_filter(weak=not self.namespaced)
        if self.uid is not None:  # once for all cases: this process never executes a program, its children inherit
            kernel.drop_bounding_set(kernel.last_cap())
        if self.namespaced:
            isolate_fs(int(cfg["tmpfs_mb"]))
            self.work_root = os.path.join("/tmp", _WORK_NAME)
            os.mkdir(self.work_root, 0o711)
        else:
            self.work_root = tempfile.mkdtemp(prefix="gdpo_sbx_")
            os.chmod(self.work_root, 0o711)
        self.count = 0

    # --- one test case ---------------------------------------------------------------------------------------
    def _child(self, req: dict, case: dict, wd: str, fds: tuple[int, int, int, int]) -> None:
        lim = req["limits"]
        os.setsid()
        if self.cgroup is not None:
            cgroups.join(self.cgroup)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(4, _MAX_FD)
        os.chdir(wd)
        os.environ.clear()
        os.environ.update({"HOME": wd, "TMPDIR": wd, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})

        def cap(res: int, value: int) -> None:
            resource.setrlimit(res, (value, value))

        cap(resource.RLIMIT_CPU, max(1, int(lim["cpu_s"])))
        cap(resource.RLIMIT_AS, int(lim["memory_mb"]) << 20)
        cap(resource.RLIMIT_FSIZE, int(lim["file_mb"]) << 20)
        cap(resource.RLIMIT_NOFILE, int(lim["max_files"]))
        cap(resource.RLIMIT_CORE, 0)
        cap(resource.RLIMIT_NPROC, int(lim["nproc"]))
        if self.uid is not None:
            os.setgroups([])
            os.setgid(self.uid)
            os.setuid(self.uid)
            if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
                os._exit(125)
        kernel.no_new_privs()
        if self.seccomp is not None:
            kernel.load_filter(self.seccomp)
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.argv = ["solution.py"]
        sys.addaudithook(audit.make_hook(wd))
        runner.run_case(req["code"], req["mode"], case, req.get("fn_name"))

    def _kill_all(self, pid: int) -> None:
        """Kill every process the case left: all of the sandbox uid (seen from this pid namespace) and its group."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup is not None and self._kill_cgroup():
            return  # no process can leave the cgroup: an empty cgroup means nothing is left
        if self.uid is not None:
            helper = os.fork()
            if helper == 0:
                try:
                    os.setgroups([])
                    os.setgid(self.uid)
                    os.setuid(self.uid)
                    for _ in range(20):  # kill(-1) as that uid: every process of it but this helper
                        try:
                            os.kill(-1, signal.SIGKILL)
                        except ProcessLookupError:
                            break
                        time.sleep(0.001)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)
        self._reap()

    def _kill_cgroup(self) -> bool:
        """SIGKILL whatever is in the case's cgroup until it is empty; False if it does not empty."""
        procs = os.path.join(self.cgroup["dirs"]["pids"], "cgroup.procs")
        for _ in range(200):
            with open(procs) as f:
                left = [int(p) for p in f.read().split() if int(p) > 0]
            if not left:
                self._reap_all()
                return True
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._reap()
            time.sleep(0.001)
        return False

    @staticmethod
    def _reap_all(wait_s: float = 2.0) -> None:
        """Reap until no child is left: killed processes leave the cgroup before they finish exiting."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            time.sleep(0.0005)

    @staticmethod
    def _reap() -> None:
        while True:
            try:
                got, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if got == 0:
                return

    def _clean_tmp(self) -> None:
        if not self.namespaced:
            return
        for d in _WRITABLE_DIRS:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                p = os.path.join(d, name)
                if name == _WORK_NAME or os.path.ismount(p):
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass

    def run_one(self, req: dict, case: dict) -> dict:
        lim = req["limits"]
        self.count += 1
        wd = os.path.join(self.work_root, f"c{self.count}")
        os.mkdir(wd, 0o700)
        if self.uid is not None:
            os.chown(wd, self.uid, self.uid)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rec_r, rec_w = os.pipe()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(in_w), os.close(out_r), os.close(err_r), os.close(rec_r)
                self._child(req, case, wd, (in_r, out_w, err_w, rec_w))
            finally:
                os._exit(126)
        for fd in (in_r, out_w, err_w, rec_w):
            os.close(fd)
        try:
            result = self._supervise(pid, case.get("stdin", "").encode(), (in_w, out_r, err_r, rec_r), lim, start)
        finally:
            self._kill_all(pid)
            shutil.rmtree(wd, ignore_errors=True)
            self._clean_tmp()
        result["wall_s"] = round(time.monotonic() - start, 4)
        return result

    def _supervise(self, pid: int, stdin: bytes, fds: tuple[int, ...], lim: dict, start: float) -> dict:
        in_w, out_r, err_r, rec_r = fds
        bufs = {out_r: bytearray(), err_r: bytearray(), rec_r: bytearray()}
        pidfd = os.pidfd_open(pid)
        readers = {out_r, err_r, rec_r}
        pending = memoryview(stdin)
        writer = in_w if pending else None
        if writer is None:
            os.close(in_w)
        else:
            os.set_blocking(in_w, False)
        status, timed_out, truncated, exited_at = None, False, False, None
        cap = int(lim["output_bytes"])
        try:
            while readers or status is None:
                now = time.monotonic()
                if now - start > float(lim["wall_s"]):
                    timed_out = status is None
                    break
                if exited_at is not None and now - exited_at > 0.2:
                    break  # the program exited; a leftover process still holds a pipe open
                waiting = [pidfd] if status is None else []
                r, w, _ = select.select([*readers, *waiting], [writer] if writer is not None else [], [], 0.05)
                if writer is not None and writer in w:
                    try:
                        pending = pending[os.write(writer, pending[:65536]) :]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        os.close(writer)
                        writer = None
                for fd in r:
                    if fd == pidfd:
                        _, st = os.waitpid(pid, 0)
                        status = st
                        exited_at = time.monotonic()
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        readers.discard(fd)
                        continue
                    bufs[fd] += chunk
                if sum(len(b) for b in bufs.values()) > cap:
                    truncated = True
                    break
        finally:
            os.close(pidfd)
            for fd in (out_r, err_r, rec_r):
                os.close(fd)
            if writer is not None:
                os.close(writer)
        if status is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
        exit_code = sig = None
        if status is not None:
            if os.WIFEXITED(status):
                exit_code = os.WEXITSTATUS(status)
            elif os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
        return {
            "exit": exit_code,
            "signal": sig,
            "timed_out": timed_out,
            "output_truncated": truncated,
            "stdout": bytes(bufs[out_r][:cap]).decode("utf-8", "replace"),
            "stderr": bytes(bufs[err_r][-4096:]).decode("utf-8", "replace"),
            "record": None if truncated else bytes(bufs[rec_r]).decode("utf-8", "replace"),
        }

    def handle(self, req: dict) -> dict:
        lim = req["limits"]
        if self.cgroup is not None:
            want = (int(lim["memory_mb"]) << 20, int(lim["nproc"]))
            if want != self.cg_limits:
                cgroups.set_limits(self.cgroup, *want)
                self.cg_limits = want
        return {"results": [self.run_one(req, case) for case in req["cases"]]}


def main() -> None:
    import json

    cfg = json.loads(sys.argv[1])
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0), os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    try:
        server = Server(cfg)
    except Exception as e:  # noqa: BLE001 - report why the sandbox cannot start
        wire.write_frame(ctl_out, {"ready": False, "error": f"{type(e).__name__}: {e}"})
        return
    wire.write_frame(
        ctl_out,
        {
            "ready": True,
            "seccomp": server.seccomp is not None,
            "seccomp_error": server.seccomp_error,
            "pid1": os.getpid() == 1,
        },
    )
    try:
        while True:
            req = wire.read_frame(ctl_in)
            if req is None:
                break
            try:
                resp = server.handle(req)
            except Exception as e:  # noqa: BLE001 - a request the server could not run: the parent fails its cases
                resp = {"error": f"{type(e).__name__}: {e}"}
            wire.write_frame(ctl_out, resp)
    except OSError:
        pass  # the parent is gone (broken pipe)
    finally:
        if server.cgroup is not None and server._kill_cgroup():
            cgroups.remove(server.cgroup)  # also when the parent died without cleaning up
        if not server.namespaced:
            shutil.rmtree(server.work_root, ignore_errors=True)


if __name__ == "__main__":
    main()
