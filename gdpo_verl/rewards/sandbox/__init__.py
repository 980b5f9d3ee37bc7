"""Run untrusted Python in a sandbox (see docs/rewards.md, "Sandbox", for the threat model and the layers).

The one API reward functions use: :func:`run_cases` runs a program on a list of test cases, each in a fresh process
forked from a warm sandbox server, and returns what each case printed, its result record and how it ended. Deciding
pass or fail is the caller's job, in its own (trusted) process: nothing here ever sees an expected output.

Modules: ``limits`` (Limits), ``probe`` (isolation detection, fail-closed rule), ``server`` (parent side of the fork
server), ``launcher`` (the server itself), ``runner`` (what runs in a sandboxed process), ``kernel`` (capabilities,
no-new-privs, seccomp), ``cgroups``, ``audit`` (audit hook), ``wire`` (framing), ``fusion`` (SandboxFusion backend).
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import Limits
from .probe import WeakSandboxError, allow_weak, isolation_mode, require_isolation, weak_allowed
from .server import SandboxUnavailable, describe, run_request, shutdown

__all__ = [
    "CaseResult",
    "Limits",
    "SandboxResult",
    "SandboxUnavailable",
    "WeakSandboxError",
    "allow_weak",
    "describe",
    "isolation_mode",
    "require_isolation",
    "run_cases",
    "run_python",
    "shutdown",
    "weak_allowed",
]


@dataclass
class CaseResult:
    """How one test case ended. ``record`` is the raw text the process wrote to its record channel (untrusted)."""

    exit: int | None
    signal: int | None
    timed_out: bool
    output_truncated: bool
    stdout: str
    stderr: str
    record: str | None
    wall_s: float = 0.0
    failed: bool = False  # the case broke something around it (its cleanup did not finish): an error of the program

    @property
    def exited_ok(self) -> bool:
        return self.exit == 0 and not self.timed_out and not self.output_truncated

    @classmethod
    def from_wire(cls, d: dict) -> CaseResult:
        return cls(
            exit=d.get("exit"),
            signal=d.get("signal"),
            timed_out=bool(d.get("timed_out")),
            output_truncated=bool(d.get("output_truncated")),
            stdout=str(d.get("stdout") or ""),
            stderr=str(d.get("stderr") or ""),
            record=d.get("record"),
            wall_s=float(d.get("wall_s") or 0.0),
            failed=bool(d.get("failed")),
        )


def run_cases(
    code: str,
    mode: str,
    cases: list[dict],
    limits: Limits | None = None,
    fn_name: str | None = None,
    packages: tuple[str, ...] = (),
) -> list[CaseResult]:
    """Run ``code`` once per case. ``mode``: ``script``/``stdio`` (case ``{"stdin"}``), ``call`` (``{"args"}``,
    with ``fn_name``) or ``expr`` (``{"exprs": [...]}``). ``packages``: installed top-level packages the code may
    import (bound read-only into the sandbox's root; the standard library always is). Raises WeakSandboxError (weak
    isolation not allowed) or SandboxUnavailable (the sandbox could not run)."""
    require_isolation()
    limits = limits or Limits()
    req = {
        "code": code,
        "mode": mode,
        "fn_name": fn_name,
        "cases": cases,
        "limits": {k: getattr(limits, k) for k in limits.__dataclass_fields__},
    }
    timeout = min(len(cases) * (limits.wall_s + 2.0), limits.total_s + limits.wall_s) + 15.0
    resp = run_request(req, timeout, tuple(packages))
    if "error" in resp or len(resp.get("results", [])) != len(cases):
        raise SandboxUnavailable(f"sandbox server could not run the request: {resp.get('error')}")
    return [CaseResult.from_wire(r) for r in resp["results"]]


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    output_truncated: bool = False
    wall_s: float = 0.0
    isolation: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_truncated


def run_python(code: str, stdin: str = "", limits: Limits | None = None) -> SandboxResult:
    """Run ``code`` as ``__main__`` with ``stdin``; returncode is -signal when a signal ended it."""
    (r,) = run_cases(code, "script", [{"stdin": stdin}], limits)
    return SandboxResult(
        returncode=r.exit if r.exit is not None else (-r.signal if r.signal else None),
        stdout=r.stdout,
        stderr=r.stderr,
        timed_out=r.timed_out,
        output_truncated=r.output_truncated,
        wall_s=r.wall_s,
        isolation=isolation_mode(),
    )
