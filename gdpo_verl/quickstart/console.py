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
_CARETS = re.compile(r"^\s*[\^~]+\s*$")  # Python's markers under the failing expression
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
    """``ValueError: ...``, ``ray.exceptions.RayTaskError(KeyError): ...`` (after :func:`plain`); not Hydra's echo."""
    return bool(_EXCEPTION.match(line)) and ":" in line and not any(p.search(line) for p in _NOISE)


def verl_error(lines: Iterable[str], frames: int = 2, max_message_lines: int = 8) -> list[str]:
    """verl's own error from the last lines of its output, as plain text: the last exception's message (which may
    span lines) and the ``frames`` innermost frames before it, without Hydra's echo of the overrides or its hint, and
    without the ``^^^`` markers. Empty when there is no exception."""
    text = [plain(line).rstrip() for line in lines]
    text = [t for t in text if t.strip() and not _CARETS.match(t) and not any(p.search(t) for p in _NOISE)]
    found = [i for i, t in enumerate(text) if is_exception_line(t)]
    if not found:
        return []
    last = found[-1]
    starts = [i for i in range(last) if text[i].lstrip().startswith('File "')]
    context = text[starts[-frames] : last] if len(starts) >= frames else text[starts[0] : last] if starts else []
    return [*context, *text[last : last + max_message_lines]]
