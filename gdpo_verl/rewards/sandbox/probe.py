"""Which isolation this host gives, and the fail-closed rule for the weak fallback."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import lru_cache

UNSHARE_FLAGS = ("--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--mount-proc")
ALLOW_WEAK_ENV = "GDPO_SANDBOX_ALLOW_WEAK"
FORCE_WEAK_ENV = "GDPO_SANDBOX_NO_NAMESPACES"


class WeakSandboxError(RuntimeError):
    """Only the weak fallback isolation is available and the user did not allow it."""


@lru_cache(maxsize=1)
def isolation_mode() -> str:
    """``namespaces`` (root and a working ``unshare`` of mount/pid/net/ipc/uts), else ``rlimits`` (weak)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None or os.environ.get(FORCE_WEAK_ENV):
        return "rlimits"
    try:
        probe = subprocess.run([unshare, *UNSHARE_FLAGS, "true"], timeout=10, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return "rlimits"
    return "namespaces" if probe.returncode == 0 else "rlimits"


def weak_allowed() -> bool:
    return os.environ.get(ALLOW_WEAK_ENV) == "1"


def allow_weak(allowed: bool) -> None:
    """Record the user's opt-in (``reward.gdpo_multi.allow_weak_sandbox=true``, or ``GDPO_SANDBOX_ALLOW_WEAK=1`` set
    by the user) where reward worker processes see it."""
    if allowed:
        os.environ[ALLOW_WEAK_ENV] = "1"


WEAK_MESSAGE = (
    "the code sandbox has only its weak fallback here (rlimits + audit hook, no namespaces: needs root and a working "
    "`unshare`), which does not stop network access to this host, leftover daemons or writes outside the work "
    "directory. Run as root where `unshare --mount --net --pid --ipc --uts` works, or accept the risk with "
    "reward.gdpo_multi.allow_weak_sandbox=true"
)


def require_isolation() -> None:
    if isolation_mode() != "namespaces" and not weak_allowed():
        raise WeakSandboxError(WEAK_MESSAGE)


NO_SECCOMP_MESSAGE = (
    "the code sandbox cannot load its seccomp filter here ({why}): a sandboxed program could then start other "
    "programs (/bin/sh, compilers) and reach kernel interfaces the filter denies. Install libseccomp (Debian: "
    "libseccomp2) and the pyseccomp package, or accept the risk with reward.gdpo_multi.allow_weak_sandbox=true"
)
