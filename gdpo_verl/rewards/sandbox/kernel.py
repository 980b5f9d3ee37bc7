"""Kernel-side confinement of a sandboxed process, applied by the sandbox server in the forked child before the
program runs: drop the capability bounding set, ``PR_SET_NO_NEW_PRIVS``, and a seccomp filter (libseccomp through
``pyseccomp``) that makes new programs (execve), namespace creation, mounts, ptrace, SysV IPC, bpf, keyrings and
other kernel attack surface fail with EPERM. Compiled in the server before any untrusted code exists."""

from __future__ import annotations

import ctypes
import errno

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEW_FLAGS = (0x00000080, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
DENIED_SYSCALLS = (
    # new programs (nothing the sandbox runs needs one; this also covers _posixsubprocess.fork_exec)
    "execve", "execveat",
    # namespaces and mounts
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "open_by_handle_at", "name_to_handle_at",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # SysV IPC (outlives processes)
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    # kernel attack surface
    "bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "quotactl", "swapon", "swapoff", "reboot", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "iopl", "ioperm", "uselib",
    "vhangup", "lookup_dcookie", "personality",
    # device nodes and FIFOs (no audit event covers os.mknod)
    "mknod", "mknodat",
)  # fmt: skip
# Without namespaces (the weak fallback) processes must stay in the case's process group, which is what gets killed.
WEAK_ONLY_DENIED = ("setsid", "setpgid")
AF_UNIX = 1

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, arg: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {errno.errorcode.get(err, err)}")


def last_cap() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def drop_bounding_set(last: int) -> None:
    """Remove capabilities 0..last from the bounding set (needs CAP_SETPCAP: call it before giving up root)."""
    for cap in range(last + 1):
        prctl(PR_CAPBSET_DROP, cap)


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def build_filter(weak: bool = False):
    """A compiled seccomp filter object, or None (with the reason) when libseccomp / pyseccomp is missing.
    Sockets other than AF_UNIX are denied too (the only network defence of the weak fallback); ``weak`` also denies
    leaving the process group."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:
        return None, f"pyseccomp unavailable: {e}"
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS + (WEAK_ONLY_DENIED if weak else ()):
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a syscall on this architecture
    for flag in _CLONE_NEW_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(deny, "socket", sc.Arg(0, sc.NE, AF_UNIX))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags live in a struct a filter cannot read; libc falls back
    return f, ""


def load_filter(f) -> None:
    f.load()
