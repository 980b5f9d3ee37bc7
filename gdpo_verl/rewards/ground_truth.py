"""What every suite does with a sample's ground truth before and when it reads it.

- :func:`plain`: parquet gives lists as numpy arrays (and numbers as numpy scalars); reward functions get plain
  Python values (lists, dicts, str, int, float), whatever the dataset's storage.
- :class:`BadGroundTruth`: raised by a built-in reward whose ground truth is missing, empty or malformed. The
  manager turns it into NaN with cause ``BadGroundTruth``, counted and warned once per reward, in every suite.
"""

from __future__ import annotations

from typing import Any


class BadGroundTruth(ValueError):
    """The sample's ground truth cannot be used by this reward (missing, empty or malformed)."""


def plain(value: Any) -> Any:
    """``value`` with numpy arrays turned into lists and numpy scalars into Python numbers, recursively."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def require_text(ground_truth: Any, suite: str) -> str:
    """The ground truth as stripped text (a one-element list is unwrapped); BadGroundTruth when None or empty."""
    gt = plain(ground_truth)
    if isinstance(gt, (list, tuple)):
        if len(gt) != 1:
            raise BadGroundTruth(f"{suite}: ground truth is a list of {len(gt)} values, expected one: {gt!r:.200}")
        gt = gt[0]
    if gt is None or isinstance(gt, (dict, bool)):
        raise BadGroundTruth(f"{suite}: ground truth is {gt!r:.200}, expected a number or text")
    text = str(gt).strip()
    if not text:
        raise BadGroundTruth(f"{suite}: ground truth is empty")
    return text
