"""Reward values in the forms verl's reward loop can hand the estimator: numpy columns, lists, torch tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gdpo_verl_plugins.adv_estimator import _as_floats

BF16 = torch.bfloat16


def _object_column(*values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # element by element: numpy cannot convert a bf16 tensor
    for i, v in enumerate(values):
        out[i] = v
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda: [torch.tensor(1.0, dtype=BF16), torch.tensor(0.5, dtype=BF16), None],  # V1: one value per row
        lambda: _object_column(torch.tensor(1.0, dtype=BF16), torch.tensor(0.5, dtype=BF16), None),  # legacy
        lambda: torch.tensor([1.0, 0.5, math.nan], dtype=BF16),
    ],
)
def test_bf16_values_are_converted(make):
    out = _as_floats("correct", make())
    assert out.dtype == np.float64 and out[:2].tolist() == [1.0, 0.5] and math.isnan(out[2])


def test_a_value_that_is_no_number_names_the_key():
    with pytest.raises(TypeError, match="'correct'.*tensor"):
        _as_floats("correct", [torch.tensor([1.0, 2.0], dtype=BF16), torch.tensor(1.0, dtype=BF16)])
