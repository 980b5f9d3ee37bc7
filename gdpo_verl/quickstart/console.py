"""Reading verl's console output: the per-step metrics line of verl's ``console`` logger, the start-up phases, and
verl's own error without colour codes, Ray's process prefixes or Hydra's echo of the override list."""

from __future__ import annotations

import re
from collections.abc import Iterable

_STEP = re.compile(r"step:(\d+) - (.*)$")
_WRAPPED = re.compile(r"^[\w.]+\((.*)\)$")  # numpy scalars print as np.float64(0.5)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_RAY_PREFIX = re.compile(r"^\((?:[\w.]+ )?pid=\d+(?:, ip=[\d.]+)?\)\s?")  # "(TaskRunnerV1 pid=12) ", "(pid=3) "
# What verl prints when each start-up phase is over, on the V1 and the legacy trainer (in this order).
PHASES = (
    ("Ray up", re.compile(r"Started a local Ray instance")),
    ("workers started", re.compile(r"^\(WorkerDict pid=\d+")),
    ("model loaded", re.compile(r"contains [\d.]+\s?[KMBT]? parameters")),
    ("training loop started, generating the first rollouts", re.compile(r"Training Progress:")),
)
# Lines that are not verl's error: Hydra's echo of every override, and its hint about HYDRA_FULL_ERROR.
_NOISE = (
    re.compile(r"^Error executing job with overrides:"),
    re.compile(r"HYDRA_FULL_ERROR"),
)
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt)\b(?:\(.*?\))?:?")


def plain(line: str) -> str:
    """``line`` without ANSI colour codes and without Ray's ``(Actor pid=N)`` prefix."""
    return _RAY_PREFIX.sub("", _ANSI.sub("", line))


def parse_step(line: str) -> tuple[int, dict[str, float]] | None:
    """verl's console logger prints ``step:N - key:value - key:value``; return (N, metrics) or None."""
    m = _STEP.search(line)
    if not m:
        return None
    metrics: dict[str, float] = {}
    for part in m.group(2).split(" - "):
        key, sep, value = part.rpartition(":")
        if not sep:
            continue
        wrapped = _WRAPPED.match(value.strip())
        try:
            metrics[key.strip()] = float(wrapped.group(1) if wrapped else value)
        except ValueError:
            continue
    return int(m.group(1)), metrics


def phases(line: str) -> list[str]:
    """The start-up phases that ``line`` (raw, as verl printed it) says are over."""
    text = _ANSI.sub("", line)
    return [name for name, pattern in PHASES if pattern.search(text)]


def is_exception_line(line: str) -> bool:
    """``ValueError: ...``, ``ray.exceptions.RayTaskError(KeyError): ...`` (after :func:`plain`)."""
    return bool(_EXCEPTION.match(line)) and ":" in line


def verl_error(lines: Iterable[str], max_lines: int = 12) -> list[str]:
    """verl's own error from the last lines of its output: the last traceback's final frames and exception
    message, as plain text, without the override list Hydra echoes. Empty when no traceback or exception is there."""
    text = [plain(line).rstrip() for line in lines]
    text = [t for t in text if t.strip() and not any(p.search(t) for p in _NOISE)]
    starts = [i for i, t in enumerate(text) if t.startswith("Traceback (most recent call last)")]
    if starts:
        block = text[starts[-1] :]
    else:
        found = [i for i, t in enumerate(text) if is_exception_line(t)]
        if not found:
            return []
        block = text[found[-1] :]
    if len(block) <= max_lines:
        return block
    exceptions = [i for i, t in enumerate(block) if is_exception_line(t)]
    first = exceptions[-1] if exceptions else len(block) - 1
    # the message (which may span lines) and the frames just before it
    begin = max(0, min(first - 2, len(block) - max_lines))
    return block[begin : begin + max_lines]
