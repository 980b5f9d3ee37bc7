"""Sandbox server: ``python -I launcher.py CONFIG_JSON``, started by :mod:`.server` (stdlib + pyseccomp only).

With namespaces it is PID 1 of fresh mount, pid, net, ipc and uts namespaces (``unshare``). At start, before it
reads any request, it compiles the seccomp filter, drops the capability bounding set, opens the sandbox's cgroup
directories and moves into a **new root**: a small read-only tmpfs holding read-only binds of exactly what Python
needs (the standard library, the system's shared-library directories, ``ld.so.cache``, a few device nodes) and a
fresh ``/proc``; nothing of ``$HOME``, caches, the project or any data. Then it forks the **zygote**.

The zygote is a copy of this process from before any request: it only ever receives file descriptors, and for each
test case forks (twice: the case process is reparented to this server, which reaps it) a case process that reads
its own program and case input from one of those descriptors and nothing else. So no process that held another
request, a result or an expected output is an ancestor of a case. The case process, still root, unshares its own
mount and IPC namespaces and mounts a fresh size- and inode-limited tmpfs on ``/tmp`` (its work directory) and on
``/dev/shm``; they vanish with its last process (no recursive delete of a tree the program built). Then it joins the
sandbox cgroup, keeps only its stdin/stdout/stderr/record descriptors, sets rlimits, becomes an unprivileged uid,
sets no-new-privs, loads the seccomp filter, installs the audit hook and runs the program.

This server reads requests (frames on its stdin, answers on its stdout: pipes no sandboxed process ever holds),
supervises each case (wall time including cleanup, output size), kills every process of the case through the
cgroup, and reports what each case printed, its record and how it ended. It never runs untrusted code and never
holds an expected output. When its parent goes away (end of its stdin), it stops at once, mid-case included.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import struct
import sys
import sysconfig
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit  # noqa: E402
import cgroups  # noqa: E402
import kernel  # noqa: E402
import runner  # noqa: E402
import wire  # noqa: E402

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT = 1, 2, 4, 8, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_MNT_DETACH = 2
_CLONE_NEWNS, _CLONE_NEWIPC = 0x00020000, 0x08000000
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "ppc64le": 203, "s390x": 217}
_DEVICES = ("null", "zero", "full", "random", "urandom")
_MAX_FD = max(1024, os.sysconf("SC_OPEN_MAX"))
_PID = struct.Struct("i")
# Imported once here, so that every case has them without reading the disk.
PRELOAD = (
    "array", "bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "operator", "random", "re", "statistics", "string", "typing",
)  # fmt: skip
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if x is None else x.encode() for x in (src, dst, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {src} -> {dst}")


def _tmpfs(dst: str, size_mb: int, inodes: int, mode: str, uid: int | None = None, ro: bool = False) -> None:
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    flags = _MS_NOSUID | _MS_NODEV | (_MS_RDONLY if ro else 0)
    _mount("tmpfs", dst, "tmpfs", flags, f"size={size_mb}m,nr_inodes={inodes},mode={mode}{owner}")


# --- the new root ---------------------------------------------------------------------------------------------------
def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip(os.sep) + os.sep)


def root_view() -> tuple[list[str], list[str], list[str]]:
    """(directories bound read-only, files bound read-only, directories hidden under an empty tmpfs): Python's
    standard library (its ``site-packages`` hidden), the system's shared-library directories, ``ld.so.cache``."""
    base = os.path.realpath(sys.base_prefix)
    stdlib = set()
    for p in sys.path:
        real = os.path.realpath(p) if p else ""
        parts = set(real.split(os.sep))
        if os.path.isdir(real) and _under(real, base) and not parts & {"site-packages", "dist-packages"}:
            stdlib.add(real)
    arch = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    libs = {os.path.realpath(d) for d in (f"/lib/{arch}", f"/usr/lib/{arch}", "/lib64", "/usr/lib64")}
    dirs = sorted(d for d in stdlib | libs if os.path.isdir(d))
    dirs = [d for d in dirs if not any(o != d and _under(d, o) for o in dirs)]  # nested ones come with their parent
    hidden = sorted({os.path.join(d, n) for d in dirs for n in ("site-packages", "dist-packages")} - set(dirs))
    files = [f for f in ("/etc/ld.so.cache",) if os.path.isfile(f)]
    return dirs, files, [h for h in hidden if os.path.isdir(h)]


def package_view(names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(directories, files, import roots) of the named top-level packages the sandboxed code may import: each
    package's directory (or module file) and the vendored libraries of its wheel (``<name>.libs``)."""
    dirs, files, roots = [], [], []
    for name in names:
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        where = (list(spec.submodule_search_locations or []) or [spec.origin]) if spec is not None else [None]
        if not where[0] or not os.path.exists(where[0]):
            raise ModuleNotFoundError(f"sandbox package {name!r} is not installed for {sys.executable}")
        path = os.path.realpath(where[0])
        (dirs if os.path.isdir(path) else files).append(path)
        libs = os.path.join(os.path.dirname(path), f"{name}.libs")
        if os.path.isdir(libs):
            dirs.append(os.path.realpath(libs))
        roots.append(os.path.dirname(path))
    return dirs, files, roots


PACKAGES_DIR = "/sandbox-packages"  # where the packages named in ``sandbox_packages`` appear inside the sandbox
STAGING_POINTS = ("/tmp", "/mnt", "/media", "/srv", "/var/tmp", "/opt", "/run")


def staging_point(sources: list[str]) -> str:
    """The first existing directory of ``STAGING_POINTS`` that is no ancestor of a bound path."""
    for d in STAGING_POINTS:
        if os.path.isdir(d) and not os.path.islink(d) and not any(_under(src, d) for src in sources):
            return d
    raise OSError(f"sandbox: every directory of {STAGING_POINTS} holds a path the sandbox binds; cannot build its root")


def enter_new_root(packages: list[str]) -> list[str]:
    """Move this process (and its mount namespace) into the minimal root; return what is bound."""
    dirs, files, hidden = root_view()
    pkg_dirs, pkg_files, _ = package_view(packages)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    # the new root is built on a tmpfs mounted in this namespace only (the host's directory is not touched), at a
    # directory that holds none of the bound paths: a tmpfs there would hide them (e.g. a virtualenv under /tmp)
    new = staging_point(dirs + files + hidden + pkg_dirs + pkg_files)
    _tmpfs(new, 4, 4096, "755")
    for name in os.listdir("/"):  # merged-/usr links (/lib -> usr/lib), so that library paths resolve
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), os.path.join(new, name))
    for src in dirs:
        dst = new + src
        os.makedirs(dst, mode=0o755, exist_ok=True)
        _mount(src, dst, None, _MS_BIND | _MS_REC)
        _mount(None, dst, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for src in files:
        dst = new + src
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        open(dst, "w").close()  # noqa: SIM115
        _mount(src, dst, None, _MS_BIND)
        _mount(None, dst, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for h in hidden:
        _tmpfs(new + h, 1, 64, "755")
    # the named packages under PACKAGES_DIR, away from where they live: a virtualenv under /tmp would be hidden by
    # each case's own /tmp (a package and its vendored ``<name>.libs`` stay siblings, as their RPATHs expect)
    packages_bound = {src: f"{PACKAGES_DIR}/{os.path.basename(src)}" for src in pkg_dirs + pkg_files}
    for src, where in packages_bound.items():
        dst = new + where
        if src in pkg_dirs:
            os.makedirs(dst, mode=0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
            open(dst, "w").close()  # noqa: SIM115
        _mount(src, dst, None, _MS_BIND | _MS_REC)
        _mount(None, dst, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    for h in hidden:
        _mount(None, new + h, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.makedirs(new + "/dev", mode=0o755)
    _mount("tmpfs", new + "/dev", "tmpfs", _MS_NOSUID | _MS_NOEXEC, "size=64k,nr_inodes=64,mode=755")
    for d in _DEVICES:
        if os.path.exists("/dev/" + d):
            open(f"{new}/dev/{d}", "w").close()  # noqa: SIM115
            _mount("/dev/" + d, f"{new}/dev/{d}", None, _MS_BIND)
    for d in ("/proc", "/tmp", "/dev/shm", "/.old"):
        os.makedirs(new + d, mode=0o755, exist_ok=True)
    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(f"pivot_root: unknown syscall number on {platform.machine()}")
    os.chdir(new)
    _check(_libc.syscall(nr, b".", b".old"), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", _MNT_DETACH), "umount /.old")
    os.rmdir("/.old")
    try:  # other users' processes (this server, the zygote) are invisible to the sandbox uid
        _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, "hidepid=2")
    except OSError:
        _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    keep = [p for p in sys.path if any(_under(os.path.realpath(p), d) for d in dirs) and os.path.isdir(p)]
    sys.path[:] = keep + ([PACKAGES_DIR] if packages_bound else [])
    return dirs + list(packages_bound.values())


class Server:
    def __init__(self, cfg: dict, ctl: tuple[int, int]) -> None:
        self.ctl = ctl  # the pipes to the parent: the zygote closes them
        self.uid: int | None = cfg.get("uid")
        self.namespaced = bool(cfg.get("namespaced"))
        self.cgroup: dict | None = cfg.get("cgroup")
        self.cg_limits: tuple | None = None
        for name in PRELOAD:
            __import__(name)
        self.seccomp, self.seccomp_error = kernel.build_filter(weak=not self.namespaced)
        if self.uid is not None:  # once for all cases: this process never executes a program, its children inherit
            kernel.drop_bounding_set(kernel.last_cap())
        kernel.prctl(kernel.PR_SET_CHILD_SUBREAPER, 1)  # case processes are reparented here, not to init
        if self.cgroup is not None:  # reachable after the root changes
            cgroups.open_dirs(self.cgroup)
        self.work_root = None
        self.bound: list[str] = []
        if self.namespaced:
            self.bound = enter_new_root(list(cfg.get("packages") or []))
        else:
            self.work_root = tempfile.mkdtemp(prefix="gdpo_sbx_")
            os.chmod(self.work_root, 0o711)
        self.count = 0
        self.ctl_in = ctl[0]
        self.zygote, self.zsock = self._start_zygote()

    # --- the zygote: forks case processes, never holds a request ----------------------------------------------
    def _start_zygote(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                for fd in self.ctl:
                    os.close(fd)
                kernel.prctl(kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
                self._zygote_loop(theirs)
            finally:
                os._exit(0)
        theirs.close()
        return pid, ours

    def _zygote_loop(self, sock: socket.socket) -> None:
        while True:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 8)
            if not msg:
                return
            pid_r, pid_w = os.pipe()
            mid = os.fork()
            if mid == 0:
                try:
                    os.close(pid_r)
                    case = os.fork()
                    if case == 0:
                        try:
                            os.close(pid_w)
                            sock.close()
                            self._case(fds)
                        finally:
                            os._exit(126)
                    os.write(pid_w, _PID.pack(case))
                finally:
                    os._exit(0)
            os.close(pid_w)
            for fd in fds:
                os.close(fd)
            data = wire.read_exact(pid_r, _PID.size) or _PID.pack(0)
            os.close(pid_r)
            os.waitpid(mid, 0)  # the case process is now this server's child (subreaper / PID 1)
            sock.send(data)

    # --- one case process ----------------------------------------------------------------------------------------
    def _case(self, fds: list[int]) -> None:
        """Runs in the case process: ``fds`` = stdin, stdout, stderr, record, request (its program and case), setup
        status. The setup either writes ``ok`` to the status pipe and closes it just before the program runs, or
        writes why it failed: a failure before the program exists is the sandbox's, which the program cannot forge."""
        try:
            code, mode, case, fn_name, wd = self._setup(fds)
            os.write(4, b"ok")
            os.close(4)
        except BaseException as e:  # noqa: BLE001 - reported to the server as the sandbox's own failure
            os.write(fds[5], f"{type(e).__name__}: {e}"[:1000].encode() or b"?")  # fd 4 once it has been moved
            os._exit(125)
        sys.addaudithook(audit.make_hook(wd))
        runner.run_case(code, mode, case, fn_name)

    def _setup(self, fds: list[int]) -> tuple:
        os.setsid()
        with open(fds[4], "rb") as f:
            req = json.loads(f.read())
        lim = req["limits"]
        if self.namespaced:  # its own /tmp, /dev/shm and IPC objects, gone with its last process
            _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWIPC), "unshare")
            size, inodes = int(lim["tmpfs_mb"]), int(lim["tmpfs_inodes"])
            _tmpfs("/tmp", size, inodes, "700", self.uid)
            _tmpfs("/dev/shm", size, inodes, "1777")
            wd = "/tmp"
        else:
            wd = req["wd"]
        if self.cgroup is not None:
            cgroups.join(self.cgroup)
        for target, fd in enumerate([*fds[:4], fds[5]]):  # received fds are >= 3 + their index: no clobbering
            os.dup2(fd, target)
        fds[5] = 4  # the setup status pipe
        os.closerange(5, _MAX_FD)
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
                raise OSError("the sandbox uid kept root's ids")
        kernel.no_new_privs()
        if self.seccomp is not None:
            kernel.load_filter(self.seccomp)
        sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.argv = ["solution.py"]
        return req["code"], req["mode"], req["case"], req.get("fn_name"), wd

    # --- supervision and cleanup (this server) -----------------------------------------------------------------
    def _spawn(self, payload: bytes, stdin: bytes) -> tuple[int, tuple[int, int, int], int]:
        memfds = []
        for data in (stdin, payload):
            fd = os.memfd_create("gdpo_case", os.MFD_CLOEXEC)
            memfds.append(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.lseek(fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rec_r, rec_w = os.pipe()
        setup_r, setup_w = os.pipe()
        sent = [memfds[0], out_w, err_w, rec_w, memfds[1], setup_w]
        try:
            socket.send_fds(self.zsock, [b"c"], sent)
        finally:
            for fd in sent:
                os.close(fd)
        if not select.select([self.zsock], [], [], 10)[0]:
            raise RuntimeError("the zygote did not start a case process")
        data = self.zsock.recv(_PID.size)
        (pid,) = _PID.unpack(data) if len(data) == _PID.size else (0,)
        if pid <= 0:
            raise RuntimeError("the zygote could not start a case process")
        return pid, (out_r, err_r, rec_r), setup_r

    def _kill_all(self, pid: int) -> bool:
        """Kill every process the case left; False when that could not be made sure of."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup is not None:
            return self._kill_cgroup()
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
        return True

    def _kill_cgroup(self, wait_s: float = 2.0) -> bool:
        """SIGKILL whatever is in the case's cgroup until it is empty; False if it does not empty."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            left = cgroups.procs(self.cgroup)
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

    def _reap_all(self, wait_s: float = 2.0) -> None:
        """Reap every child but the zygote: killed processes leave the cgroup before they finish exiting."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self._reap():
                return
            time.sleep(0.0005)

    def _reap(self) -> bool:
        """Reap case processes that have exited; True while others remain."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return False
            if info is None:
                return self._others_alive()
            if info.si_pid == self.zygote:
                raise RuntimeError("the zygote exited")
            os.waitpid(info.si_pid, 0)

    def _others_alive(self) -> bool:
        try:
            return any(int(p) != self.zygote for p in _children())
        except OSError:
            return False

    def _remove_weak_workdir(self, wd: str) -> bool:
        """Without namespaces the work directory is on the host: remove it in a child bounded in time."""
        helper = os.fork()
        if helper == 0:
            try:
                shutil.rmtree(wd)
            finally:
                os._exit(0 if not os.path.exists(wd) else 1)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            got, st = os.waitpid(helper, os.WNOHANG)
            if got:
                return os.waitstatus_to_exitcode(st) == 0
            time.sleep(0.002)
        os.kill(helper, signal.SIGKILL)
        os.waitpid(helper, 0)
        return False

    def run_one(self, req: dict, case: dict, budget_s: float) -> tuple[dict, bool]:
        """One case: (result, clean). ``clean`` is False when what the case left could not be removed."""
        lim = dict(req["limits"])
        wall = min(float(lim["wall_s"]), budget_s)
        self.count += 1
        body = {"code": req["code"], "mode": req["mode"], "fn_name": req.get("fn_name"), "limits": lim}
        body["case"] = {k: x for k, x in case.items() if k != "stdin"}
        wd = None
        if not self.namespaced:
            wd = body["wd"] = os.path.join(self.work_root, f"c{self.count}")
            os.mkdir(wd, 0o700)
            if self.uid is not None:
                os.chown(wd, self.uid, self.uid)
        start = time.monotonic()
        pid, fds, setup_r = self._spawn(json.dumps(body).encode(), case.get("stdin", "").encode())
        try:
            result = self._supervise(pid, fds, lim, start, wall)
            os.set_blocking(setup_r, False)
            try:
                setup = os.read(setup_r, 1024)
            except BlockingIOError:
                setup = b""
            if setup != b"ok":  # the program never ran: the sandbox failed, not the program
                raise RuntimeError(f"case setup failed: {setup.decode('utf-8', 'replace') or 'did not finish'}")
        finally:
            os.close(setup_r)
            clean = self._kill_all(pid)
            if wd is not None:
                clean = self._remove_weak_workdir(wd) and clean
        wall_s = time.monotonic() - start
        result["wall_s"] = round(wall_s, 4)
        if wall_s > wall + 0.5:  # cleanup is part of the case's time
            result["timed_out"] = True
        if not clean:
            result["failed"] = True
        return result, clean

    def _parent_gone(self) -> None:
        """End of our stdin while a case runs: the parent gave up or died. Kill everything, exit."""
        if self.cgroup is not None and self._kill_cgroup(1.0):
            cgroups.remove(self.cgroup)
        os._exit(0)

    def _supervise(self, pid: int, fds: tuple[int, int, int], lim: dict, start: float, wall: float) -> dict:
        out_r, err_r, rec_r = fds
        bufs = {out_r: bytearray(), err_r: bytearray(), rec_r: bytearray()}
        pidfd = os.pidfd_open(pid)
        readers = {out_r, err_r, rec_r}
        status, timed_out, truncated, exited_at = None, False, False, None
        cap = int(lim["output_bytes"])
        watch = [self.ctl_in]
        try:
            while readers or status is None:
                now = time.monotonic()
                if now - start > wall:
                    timed_out = status is None
                    break
                if exited_at is not None and now - exited_at > 0.2:
                    break  # the program exited; a leftover process still holds a pipe open
                waiting = [pidfd] if status is None else []
                r, _, _ = select.select([*readers, *waiting, *watch], [], [], 0.05)
                for fd in r:
                    if fd == self.ctl_in:
                        self._parent_gone()
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
        if status is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
        exit_code = sig = None
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
        """Run every case of one request. ``retire``: a case left something that could not be removed, so this
        server must not serve again (the cases after it are reported failed, not run)."""
        lim = req["limits"]
        if self.cgroup is not None:
            want = (int(lim["memory_mb"]) << 20, int(lim["nproc"]), float(lim["cpus"]))
            if want != self.cg_limits:
                cgroups.set_limits(self.cgroup, *want)
                self.cg_limits = want
        deadline = time.monotonic() + float(lim["total_s"])
        results, retire = [], False
        for case in req["cases"]:
            left = deadline - time.monotonic()
            if retire or left <= 0:  # over the request's time budget, or after a case that broke its cleanup
                results.append(
                    {"exit": None, "signal": None, "timed_out": not retire, "failed": retire,
                     "output_truncated": False, "stdout": "", "stderr": "", "record": None, "wall_s": 0}
                )  # fmt: skip
                continue
            result, clean = self.run_one(req, case, left)
            results.append(result)
            retire = retire or not clean
        return {"results": results, "retire": retire}


def _children() -> list[str]:
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return f.read().split()


def main() -> None:
    cfg = json.loads(sys.argv[1])
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0), os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    try:
        server = Server(cfg, (ctl_in, ctl_out))
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
            "root": server.bound,
            "work_root": server.work_root,
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
            if "error" in resp or resp.get("retire"):
                break
    except OSError:
        pass  # the parent is gone (broken pipe)
    finally:
        if server.cgroup is not None and server._kill_cgroup():
            cgroups.remove(server.cgroup)  # also when the parent died without cleaning up
        if server.work_root is not None:
            shutil.rmtree(server.work_root, ignore_errors=True)


if __name__ == "__main__":
    main()
