"""Sandbox launcher: run as ``python -I _sandbox_launcher.py SPEC_JSON`` by :mod:`gdpo_verl.rewards.sandbox`.

Standalone on purpose (stdlib only, imports nothing from the package). When started as root inside fresh
net + pid + mount namespaces (``unshare --net --pid --fork --mount-proc``), it is PID 1 of that pid namespace:
  1. hides the world-writable directories behind size-limited tmpfs mounts (the work directory is re-bound), and
     makes the Python installation reachable for an unprivileged uid (a 0700 ancestor such as /root is replaced by a
     tmpfs that holds only bind mounts of the needed children);
  2. forks the program's process, which sets its rlimits, drops to the sandbox uid/gid, installs an audit hook and
     runs the code; PID 1 only waits and exits with the program's status (its death kills the whole namespace).
Without root (or without unshare) it runs the program directly with rlimits and the audit hook only.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import runpy
import signal
import stat
import sys

_MS_BIND, _MS_REC = 4096, 16384
_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


def _mount(libc, src: str, dst: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [None if x is None else x.encode() for x in (src, dst, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src} -> {dst}: {os.strerror(err)}")


def _overlay_dirs(libc, targets: dict[str, list[str]], tmpfs_mb: int) -> None:
    """For each directory A: remember its needed children, put a fresh tmpfs on A, re-bind the children there."""
    for parent, children in targets.items():
        fds = [(c, os.open(c, os.O_PATH)) for c in children]
        mode = 0o1777 if parent in _WRITABLE_DIRS else 0o755
        _mount(libc, "tmpfs", parent, "tmpfs", 0, f"size={tmpfs_mb}m,mode={oct(mode)[2:]}")
        for child, fd in fds:
            if not os.path.lexists(child):
                os.makedirs(child, mode=0o755, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", child, None, _MS_BIND | _MS_REC, None)
            os.close(fd)


def _child_of(ancestor: str, path: str) -> str:
    rel = os.path.relpath(path, ancestor).split(os.sep)[0]
    return os.path.join(ancestor, rel)


def _isolate_fs(workdir: str, tmpfs_mb: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    targets: dict[str, list[str]] = {}
    for d in _WRITABLE_DIRS:
        if os.path.isdir(d) and not os.path.islink(d):
            targets[d] = []
    needed = {workdir, sys.base_prefix, sys.prefix, sys.exec_prefix, *[p for p in sys.path if os.path.isdir(p)]}
    for path in sorted(needed):
        real = os.path.realpath(path)
        parts = real.split(os.sep)
        for i in range(2, len(parts)):
            anc = os.sep.join(parts[:i]) or "/"
            st = os.stat(anc)
            if anc in targets or not st.st_mode & stat.S_IXOTH:
                targets.setdefault(anc, [])
                child = _child_of(anc, real)
                if child not in targets[anc]:
                    targets[anc].append(child)
                break
    _overlay_dirs(libc, targets, tmpfs_mb)


def _set_limits(lim: dict) -> None:
    def cap(res: int, value: int) -> None:
        resource.setrlimit(res, (value, value))

    cap(resource.RLIMIT_CPU, int(lim["cpu_s"]))
    cap(resource.RLIMIT_AS, int(lim["memory_mb"]) << 20)
    cap(resource.RLIMIT_FSIZE, int(lim["file_mb"]) << 20)
    cap(resource.RLIMIT_NOFILE, int(lim["max_files"]))
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NPROC, int(lim["nproc"]))


_BLOCKED_EVENTS = (
    "socket.",
    "subprocess.Popen",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "ctypes.",
    "pty.spawn",
    "os.putenv",
    "os.unsetenv",
    "sys.setprofile",
    "sys.settrace",
)
_WRITE_EVENTS = {
    "os.rename": 2,
    "os.remove": 1,
    "os.rmdir": 1,
    "os.mkdir": 1,
    "os.symlink": 2,
    "os.link": 2,
    "os.chmod": 1,
    "os.chown": 1,
    "os.truncate": 1,
    "os.utime": 1,
    "shutil.rmtree": 1,
}


def _audit_hook(workdir: str):
    root = os.path.realpath(workdir)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an fd already opened (and so already checked)
        p = os.path.realpath(os.fsdecode(path))
        return p == root or p.startswith(root + os.sep) or p == "/dev/null"

    def hook(event: str, args: tuple) -> None:
        if event.startswith(_BLOCKED_EVENTS) and event != "socket.gethostname":
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open" and args[0] is not None:
            mode, flags = args[1], args[2] or 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & write_flags)
            if writing and not inside(args[0]):
                raise PermissionError(f"sandbox: writing outside the work directory: {args[0]!r}")
        elif event in _WRITE_EVENTS:
            for path in args[: _WRITE_EVENTS[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(f"sandbox: {event} outside the work directory: {path!r}")

    return hook


def _run_program(spec: dict) -> None:
    """In the program's own process: limits, privilege drop, audit hook, then the code."""
    os.chdir(spec["workdir"])
    _set_limits(spec["limits"])
    uid = spec.get("uid")
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.geteuid() == 0 or os.getuid() == 0:
            os._exit(125)
    sys.argv = [spec["program"]]
    sys.addaudithook(_audit_hook(spec["workdir"]))
    try:
        runpy.run_path(spec["program"], run_name="__main__")
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - report like `python file.py` would
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()


def main() -> None:
    spec = json.loads(sys.argv[1])
    if not spec.get("namespaced"):
        _run_program(spec)
        return
    _isolate_fs(spec["workdir"], int(spec["limits"]["tmpfs_mb"]))
    pid = os.fork()
    if pid == 0:
        try:
            _run_program(spec)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            sys.stdout.flush()
            os._exit(code)
        os._exit(0)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(137))
    while True:  # PID 1: reap everything, exit with the program's status
        try:
            got, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if got == pid:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
