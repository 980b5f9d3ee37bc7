"""Per-sandbox control groups: memory and pids limits over a whole process tree (v2, or v1's ``memory`` and
``pids`` controllers), created under this process's own cgroup. Stdlib only (also used inside the sandbox server)."""

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
    (None, why not). Stale ones of dead processes of this pid namespace are removed first."""
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
            return {"version": 2, "dirs": {"memory": d, "pids": d}}, ""
        dirs = {}
        for ctrl in ("memory", "pids"):
            own = _own(ctrl)
            base = os.path.join(ROOT, ctrl)
            if own is None or not os.path.isdir(base):
                remove({"version": 1, "dirs": dirs})
                return None, f"cgroup v1: no {ctrl} controller"
            _sweep(os.path.join(base, own.lstrip("/")))
            d = os.path.join(base, own.lstrip("/"), name)
            os.mkdir(d)
            dirs[ctrl] = d
        return {"version": 1, "dirs": dirs}, ""
    except OSError as e:
        return None, f"cannot create a cgroup: {e}"


def _put(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def set_limits(cg: dict, memory_bytes: int, pids: int) -> None:
    mem, pid = cg["dirs"]["memory"], cg["dirs"]["pids"]
    if cg["version"] == 2:
        _put(os.path.join(mem, "memory.max"), str(memory_bytes))
        if os.path.exists(os.path.join(mem, "memory.swap.max")):
            _put(os.path.join(mem, "memory.swap.max"), "0")
        _put(os.path.join(pid, "pids.max"), str(pids))
        return
    limit, memsw = os.path.join(mem, "memory.limit_in_bytes"), os.path.join(mem, "memory.memsw.limit_in_bytes")
    has_sw = os.path.exists(memsw)
    try:  # memsw must stay >= limit: lowering goes limit first, raising memsw first
        _put(limit, str(memory_bytes))
        if has_sw:
            _put(memsw, str(memory_bytes))
    except OSError:
        if has_sw:
            _put(memsw, str(memory_bytes))
        _put(limit, str(memory_bytes))
    _put(os.path.join(pid, "pids.max"), str(pids))


def join(cg: dict) -> None:
    """Move the calling process into the cgroup(s)."""
    for d in set(cg["dirs"].values()):
        _put(os.path.join(d, "cgroup.procs"), "0")


def remove(cg: dict | None) -> None:
    for d in set((cg or {}).get("dirs", {}).values()):
        try:
            os.rmdir(d)
        except OSError:
            pass
