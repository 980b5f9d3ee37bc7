"""Reading verl's console output: the per-step metrics line of verl's ``console`` logger."""

from __future__ import annotations

import re

_STEP = re.compile(r"step:(\d+) - (.*)$")
_WRAPPED = re.compile(r"^[\w.]+\((.*)\)$")  # numpy scalars print as np.float64(0.5)


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
