"""Per-sandbox control groups: memory and pids limits over a whole process tree and a CPU share and quota per sandbox
(v2, or v1's ``memory``, ``pids`` and ``cpu`` controllers), created under this process's own cgroup. Stdlib only
(also used inside the sandbox server, which reaches the directories through descriptors opened before its root
changes: ``cg["fds"]``)."""

from __future__ import annotations

import os

ROOT = "/sys/fs/cgroup"


def _own(controller: str | None) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if (controller is None and ctrls == "") or (controller and controller in ctrls.split(",")):
            return path
    return None


def _v2() -> bool:
    return os.path.exists(os.path.join(ROOT, "cgroup.controllers"))


PREFIX = "gdpo_sbx_"


def owner_tag() -> str:
    """This pid namespace's inode: cgroup names carry it, so a sweep never touches another container's cgroups."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _sweep(parent: str) -> None:
    """Remove empty sandbox cgroups left by processes of this pid namespace that no longer exist (killed)."""
    mine = f"{PREFIX}{owner_tag()}_"
    try:
        names = [n for n in os.listdir(parent) if n.startswith(mine)]
    except OSError:
        return
    for name in names:
        pid = name[len(mine) :].split("_", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass  # still in use


def create(name: str) -> tuple[dict | None, str]:
    """Make the cgroup(s) ``name`` (``PREFIX + owner_tag() + "_<pid>_..."``): ({"version", "dirs"}, "") or
    (None, why not). ``dirs`` has ``memory`` and ``pids``, and ``cpu`` where that controller is available. Stale
    ones of dead processes of this pid namespace are removed first; nothing is left behind on failure."""
    dirs: dict[str, str] = {}
    try:
        if _v2():
            own = _own(None)
            parent = os.path.join(ROOT, (own or "/").lstrip("/"))
            with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                enabled = f.read().split()
            if not {"memory", "pids"} <= set(enabled):
                return None, f"cgroup v2: memory/pids not enabled in {parent}/cgroup.subtree_control"
            _sweep(parent)
            d = os.path.join(parent, name)
            os.mkdir(d)
            dirs = {c: d for c in ("memory", "pids", "cpu") if c in enabled}
            return {"version": 2, "dirs": dirs}, ""
        for ctrl in ("memory", "pids", "cpu"):
            own = _own(ctrl)
            base = os.path.join(ROOT, ctrl)
            if own is None or not os.path.isdir(base):
                if ctrl == "cpu":
                    break
                remove({"version": 1, "dirs": dirs})
                return None, f"cgroup v1: no {ctrl} controller"
            _sweep(os.path.join(base, own.lstrip("/")))
            d = os.path.join(base, own.lstrip("/"), name)
            os.mkdir(d)
            dirs[ctrl] = d
        return {"version": 1, "dirs": dirs}, ""
    except OSError as e:
        remove({"dirs": dirs})
        return None, f"cannot create a cgroup: {e}"


def open_dirs(cg: dict) -> None:
    """Keep descriptors of the cgroup's directories and of their parents in ``cg`` (``fds``, ``parent_fds``: path
    -> fd), so that it can be used and removed after the caller's root changes."""
    dirs = set(cg["dirs"].values())
    cg["fds"] = {d: os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs}
    cg["parent_fds"] = {d: os.open(os.path.dirname(d), os.O_RDONLY | os.O_DIRECTORY) for d in dirs}


def _at(cg: dict, ctrl: str, name: str) -> tuple[str, int | None]:
    d = cg["dirs"][ctrl]
    fds = cg.get("fds")
    return (name, fds[d]) if fds else (os.path.join(d, name), None)


def _exists(cg: dict, ctrl: str, name: str) -> bool:
    path, dir_fd = _at(cg, ctrl, name)
    try:
        os.stat(path, dir_fd=dir_fd)
    except OSError:
        return False
    return True


def _put(cg: dict, ctrl: str, name: str, value: str) -> None:
    path, dir_fd = _at(cg, ctrl, name)
    fd = os.open(path, os.O_WRONLY, dir_fd=dir_fd)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def procs(cg: dict) -> list[int]:
    """The processes in the sandbox's pids cgroup."""
    path, dir_fd = _at(cg, "pids", "cgroup.procs")
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
    finally:
        os.close(fd)
    return [int(p) for p in data.split() if int(p) > 0]


def set_limits(cg: dict, memory_bytes: int, pids: int, cpus: float = 1.0) -> None:
    """Memory (no swap), process count, and CPU: at most ``cpus`` cores, an equal share with other sandboxes."""
    if cg["version"] == 2:
        _put(cg, "memory", "memory.max", str(memory_bytes))
        if _exists(cg, "memory", "memory.swap.max"):
            _put(cg, "memory", "memory.swap.max", "0")
        _put(cg, "pids", "pids.max", str(pids))
        if "cpu" in cg["dirs"]:
            _put(cg, "cpu", "cpu.max", f"{int(cpus * 100_000)} 100000")
        return
    has_sw = _exists(cg, "memory", "memory.memsw.limit_in_bytes")
    try:  # memsw must stay >= limit: lowering goes limit first, raising memsw first
        _put(cg, "memory", "memory.limit_in_bytes", str(memory_bytes))
        if has_sw:
            _put(cg, "memory", "memory.memsw.limit_in_bytes", str(memory_bytes))
    except OSError:
        if has_sw:
            _put(cg, "memory", "memory.memsw.limit_in_bytes", str(memory_bytes))
        _put(cg, "memory", "memory.limit_in_bytes", str(memory_bytes))
    _put(cg, "pids", "pids.max", str(pids))
    if "cpu" in cg["dirs"]:
        _put(cg, "cpu", "cpu.shares", "1024")
        _put(cg, "cpu", "cpu.cfs_period_us", "100000")
        _put(cg, "cpu", "cpu.cfs_quota_us", str(int(cpus * 100_000)))


def join(cg: dict) -> None:
    """Move the calling process into the cgroup(s)."""
    for ctrl in {d: c for c, d in cg["dirs"].items()}.values():
        _put(cg, ctrl, "cgroup.procs", "0")


def remove(cg: dict | None) -> None:
    parents = (cg or {}).get("parent_fds") or {}
    for d in set((cg or {}).get("dirs", {}).values()):
        try:
            if d in parents:
                os.rmdir(os.path.basename(d), dir_fd=parents[d])
            else:
                os.rmdir(d)
        except OSError:
            pass
