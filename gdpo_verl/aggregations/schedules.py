"""Reward-weight schedules over training steps: ``algorithm.gdpo_reward_weights`` entries that are mappings.

    constant   {schedule: constant, value: v}
    linear     {schedule: linear, start: a, end: b, steps: n, begin: t0}     a until t0, then linearly to b at t0 + n
    cosine     {schedule: cosine, start: a, end: b, steps: n, begin: t0}     a + (b - a)(1 - cos(pi u)) / 2, u in [0, 1]
    piecewise  {schedule: piecewise, points: [[t0, v0], [t1, v1], ...]}     v_i from step t_i on (v0 before t0)

``t`` is verl's ``global_steps`` (1 at the first training step); ``begin`` defaults to 0. A plain number is a
constant weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gdpo_verl.plain_config import number

from .options import AggregationError

_OPTIONS = {
    "constant": {"value"},
    "linear": {"start", "end", "steps", "begin"},
    "cosine": {"start", "end", "steps", "begin"},
    "piecewise": {"points"},
}


@dataclass(frozen=True)
class Schedule:
    kind: str
    start: float = 0.0
    end: float = 0.0
    steps: int = 1
    begin: int = 0
    points: tuple[tuple[int, float], ...] = ()

    def at(self, step: int) -> float:
        if self.kind == "constant":
            return self.start
        if self.kind == "piecewise":
            value = self.points[0][1]
            for t, v in self.points:
                if step >= t:
                    value = v
            return value
        u = min(max((step - self.begin) / self.steps, 0.0), 1.0)
        if self.kind == "cosine":
            u = (1.0 - math.cos(math.pi * u)) / 2.0
        return self.start + (self.end - self.start) * u


def _num(where: str, value: Any) -> float:
    return number(where, value, AggregationError)


def _int(where: str, value: Any, lo: int) -> int:
    return int(number(where, value, AggregationError, lo=lo, integer=True))


def parse_schedule(key: str, spec: Any) -> Schedule:
    """One weight entry (a number or a schedule mapping) -> Schedule; errors name the key and what exists."""
    where = f"algorithm.gdpo_reward_weights[{key}]"
    if not isinstance(spec, Mapping):
        return Schedule("constant", start=_num(where, spec))
    kind = spec.get("schedule")
    if kind not in _OPTIONS:
        raise AggregationError(f"{where}: schedule must be one of {list(_OPTIONS)}, got {kind!r}")
    unknown = sorted(set(spec) - _OPTIONS[kind] - {"schedule"})
    missing = sorted(_OPTIONS[kind] - {"begin"} - set(spec))
    if unknown or missing:
        raise AggregationError(
            f"{where}: schedule {kind!r} takes {sorted(_OPTIONS[kind])}"
            + (f"; unknown {unknown}" if unknown else "")
            + (f"; missing {missing}" if missing else "")
        )
    if kind == "constant":
        return Schedule(kind, start=_num(f"{where}.value", spec["value"]))
    if kind == "piecewise":
        raw = spec["points"]
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence) or not raw:
            raise AggregationError(f"{where}.points must be a non-empty list of [step, value], got {raw!r}")
        points = []
        for p in raw:
            if isinstance(p, str | bytes) or not isinstance(p, Sequence) or len(p) != 2:
                raise AggregationError(f"{where}.points: each point is [step, value], got {p!r}")
            points.append((_int(f"{where}.points step", p[0], 0), _num(f"{where}.points value", p[1])))
        if any(b[0] <= a[0] for a, b in zip(points, points[1:], strict=False)):
            raise AggregationError(f"{where}.points: steps must increase, got {[p[0] for p in points]}")
        return Schedule(kind, points=tuple(points))
    return Schedule(
        kind,
        start=_num(f"{where}.start", spec["start"]),
        end=_num(f"{where}.end", spec["end"]),
        steps=_int(f"{where}.steps", spec["steps"], 1),
        begin=_int(f"{where}.begin", spec.get("begin", 0), 0),
    )


def weights_at(keys: Sequence[str], schedules: Sequence[Schedule], step: int | None) -> tuple[float, ...]:
    """The weights at ``step``; an all-zero result is an error naming the step (nothing to learn from)."""
    if step is None:
        raise AggregationError(
            "algorithm.gdpo_reward_weights holds a schedule, but this trainer path does not give the estimator the "
            "training step (only verl's V1 trainer does: trainer.use_v1=true). Use constant weights here."
        )
    out = tuple(s.at(step) for s in schedules)
    if all(w == 0.0 for w in out):
        raise AggregationError(f"algorithm.gdpo_reward_weights are all zero at step {step} for keys {list(keys)}")
    return out
