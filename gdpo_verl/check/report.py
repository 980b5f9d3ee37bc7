"""Findings of `gdpo-verl check` and their compact text report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LEVELS = ("error", "warn", "info")
_MARK = {"error": "ERROR", "warn": "WARN ", "info": "     "}


@dataclass(frozen=True)
class Finding:
    level: str  # error | warn | info
    topic: str  # unknown-key, gdpo, reward, parallel, legacy, trainer, ...
    message: str


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def render(findings: Sequence[Finding], title: str, quiet: bool = False) -> str:
    """Errors first, then warnings, then the summary lines (info), one line each."""
    shown = [f for f in findings if not (quiet and f.level == "info")]
    shown.sort(key=lambda f: LEVELS.index(f.level))
    n_err = sum(f.level == "error" for f in findings)
    n_warn = sum(f.level == "warn" for f in findings)
    width = max((len(f.topic) for f in shown), default=0)
    lines = [f"gdpo-verl check: {title}"]
    lines += [f"  {_MARK[f.level]} {f.topic:<{width}}  {f.message}" for f in shown]
    verdict = "FAIL" if n_err else "OK"
    lines.append(f"{verdict}: {n_err} error(s), {n_warn} warning(s)")
    return "\n".join(lines)


def err(topic: str, message: str) -> Finding:
    return Finding("error", topic, message)


def warn(topic: str, message: str) -> Finding:
    return Finding("warn", topic, message)


def info(topic: str, message: str) -> Finding:
    return Finding("info", topic, message)
