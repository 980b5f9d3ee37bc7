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
    output_bytes: int = 1 << 20  # stdout + stderr + record kept per case; more kills the case
    tmpfs_mb: int = 64  # size of the sandbox server's /tmp (work directories and every writable directory)
