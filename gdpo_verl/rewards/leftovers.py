"""Which sandbox servers and sandbox cgroups a set of processes created, told apart from other processes' by the
creating pid in their names (``gdpo_sbx_<pid-ns inode>_<pid>_<n>``). For checks that nothing is left behind."""

from __future__ import annotations

import glob
import os

from .sandbox import cgroups


def _head() -> str:
    return f"{cgroups.PREFIX}{cgroups.owner_tag()}_"


def sandbox_cgroups(pids: set[int]) -> list[str]:
    """Sandbox cgroup directories (v2, or both v1 controllers) created by any of ``pids``."""
    head = _head()
    found = glob.glob(f"{cgroups.ROOT}/**/{head}*", recursive=True)
    return [d for d in found if int(os.path.basename(d)[len(head) :].split("_")[0]) in pids]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sandbox_servers(pids: set[int]) -> list[int]:
    """The top process of each live sandbox server started by any of ``pids`` (its ``unshare``, or the launcher when
    that has no sandbox parent): their command line names the cgroup. Test-case processes, forked from the launcher
    with its command line, are left out. Servers without a cgroup (no root) are not found."""
    head = _head()
    found = set()
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if "launcher.py" in cmd and any(f"{head}{p}_" in cmd for p in pids):
            found.add(int(path.split("/")[2]))
    return sorted(p for p in found if _ppid(p) not in found)
