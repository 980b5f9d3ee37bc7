"""Resource limits of one sandboxed test case (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0  # per test case, enforced by the sandbox server (the parent adds its own outer bound)
    cpu_s: int = 5
    memory_mb: int = 1024  # per process (RLIMIT_AS) and for the whole process tree (cgroup)
    file_mb: int = 16
    max_files: int = 64
    nproc: int = 16  # cgroup pids.max (and RLIMIT_NPROC)
    cpus: float = 1.0  # CPU quota of one sandbox (cgroup cpu controller), in cores
    output_bytes: int = 1 << 20  # stdout + stderr + record kept per case; more kills the case
    tmpfs_mb: int = 64  # size of each case's own /tmp (its work directory) and of its own /dev/shm
    tmpfs_inodes: int = 4096  # files and directories each of those may hold
    total_s: float = 45.0  # all cases of one request; cases past it are reported timed out without running
