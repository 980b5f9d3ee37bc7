"""The reward-function side of GDPO on OpenRLHF: every component key for every sample.

OpenRLHF copies a reward function's ``extra_logs`` into ``experience.info`` (``torch.tensor([value])`` per key) and,
when samples are concatenated, merges each key over the samples that have it: a key missing for some samples
silently shifts the others. :func:`component_logs` always emits every key (NaN for a value of None) and raises,
naming the keys present, when a key is absent. :func:`reward_func` builds OpenRLHF's
``reward_func(queries, prompts, labels)`` from a per-sample function returning the components.

OpenRLHF catches a reward function's exception and logs it at INFO only ('Failed to fetch reward'); the error is
therefore also logged at ERROR here, and the experience maker stops the step naming the sample that lacks keys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

logger = logging.getLogger("gdpo_verl")
SCORE = "score"  # optional entry of a components dict: OpenRLHF's scalar reward (logging, dynamic filtering)


class MissingComponentKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


def _number(key: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            shape = tuple(value.shape)
            raise ValueError(f"GDPO reward component {key!r} must be one number per sample, got shape {shape}")
        value = value.item()
    if isinstance(value, bool | int | float):
        return float(value)
    raise TypeError(f"GDPO reward component {key!r} holds a non-numeric value {value!r}")


def component_logs(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, float]:
    """``extra_logs`` for one sample: every key in ``keys`` as a float (None -> NaN, left out of that reward's
    statistics under the default nan_policy=exclude). An absent key raises, naming the keys present."""
    missing = [k for k in keys if k not in values]
    if missing:
        message = (
            f"GDPO reward component(s) {missing} missing (--gdpo.reward_keys={list(keys)}); the reward function "
            f"returned keys {sorted(values)}. Return every key for every sample, None where a value does not apply."
        )
        logger.error("gdpo-verl: %s", message)
        raise MissingComponentKeyError(message)
    return {k: _number(k, values[k]) for k in keys}


def reward_func(
    components: Callable[[str, str, Any], Mapping[str, Any]], keys: Sequence[str]
) -> Callable[[list, list, list], dict]:
    """OpenRLHF's ``reward_func(queries, prompts, labels)`` from ``components(query, prompt, label) -> {key: value}``.

    ``rewards``/``scores`` (OpenRLHF's scalar: its ``reward`` log and dynamic filtering; GDPO does not read it) is the
    dict's ``score`` entry when given, else the sum of the finite components."""
    keys = tuple(keys)

    def openrlhf_reward_func(queries: list, prompts: list, labels: list) -> dict:
        rows = [components(q, p, lab) for q, p, lab in zip(queries, prompts, labels, strict=True)]
        logs = [component_logs(row, keys) for row in rows]
        scores = [
            _number(SCORE, row[SCORE]) if SCORE in row else math.fsum(v for v in log.values() if math.isfinite(v))
            for row, log in zip(rows, logs, strict=True)
        ]
        score = torch.tensor(scores, dtype=torch.float32)
        return {
            "rewards": score,
            "scores": score,
            "extra_logs": {k: torch.tensor([log[k] for log in logs], dtype=torch.float64) for k in keys},
        }

    return openrlhf_reward_func
