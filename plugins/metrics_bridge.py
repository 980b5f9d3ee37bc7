"""Hands the estimator's metrics to the trainer hook that logs them with the step (verl's driver, same thread).

A trainer hook runs verl's advantage step inside :func:`collect`; the estimator :func:`push`-es its figures there.
Each block starts empty, so nothing of an earlier (failed) step is ever logged; a block opened inside another one
(verl's ``compute_advantage`` called from the V1 or separated trainer's step) leaves the figures to the outer one.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

logger = logging.getLogger("gdpo_verl")
_target: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar("gdpo_verl_metrics", default=None)
_warned = False


def push(metrics: dict[str, float]) -> None:
    """The estimator's figures, for the step being collected."""
    global _warned
    target = _target.get()
    if target is None:
        if not _warned:
            logger.warning(
                "gdpo-verl: the gdpo estimator ran outside a trainer step this plugin hooks: its gdpo/* metrics "
                "are not logged (gdpo-verl doctor names a hook that is not applied)"
            )
            _warned = True
        return
    target.update(metrics)


def collecting() -> bool:
    """Whether an outer :func:`collect` block takes the figures."""
    return _target.get() is not None


@contextlib.contextmanager
def collect() -> Iterator[dict[str, float]]:
    """The figures pushed inside the block, in the dict it yields (filled when the block ends). Inside another block
    the dict stays empty: the outer block's hook logs them."""
    figures: dict[str, float] = {}
    if collecting():
        yield figures
        return
    token = _target.set(figures)
    try:
        yield figures
    finally:
        _target.reset(token)
