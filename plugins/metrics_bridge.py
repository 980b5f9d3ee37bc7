"""Hands the estimator's metrics to the trainer step that logs them (same process: verl's driver/TaskRunner)."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_pending: dict[str, float] = {}


def push(metrics: dict[str, float]) -> None:
    with _lock:
        _pending.update(metrics)


def pop() -> dict[str, float]:
    with _lock:
        out = dict(_pending)
        _pending.clear()
    return out
