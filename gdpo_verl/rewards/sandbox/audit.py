"""A Python audit hook for sandboxed programs (stdlib only): no sockets, no new programs, no ctypes, no writes
outside the work directory (the environment may change: no new program can start to read it). Defence in depth
only: PEP 578 hooks are not a security boundary (namespaces, the unprivileged uid, cgroups and seccomp are)."""

from __future__ import annotations

import os

_BLOCKED_EVENTS = (
    "socket.",
    "subprocess.Popen",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "ctypes.",
    "pty.spawn",
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


def make_hook(workdir: str):
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
