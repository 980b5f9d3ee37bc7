"""An OpenRLHF reward-function file for the paper's tool-calling run: ``format`` and ``correctness`` from
:mod:`gdpo_verl.rewards.tool_calling` (the same functions the verl recipe uses).

    --reward.remote_url "$(python -c 'import gdpo_verl_plugins.openrlhf.tool_calling_reward as m; print(m.__file__)')"
    --gdpo.reward_keys format,correctness --data.label_key reward_model

The label is the ground truth, or verl's ``reward_model`` mapping holding it (``ground_truth``), so the parquet that
``scripts/prepare_toolrl.py`` writes serves OpenRLHF as it is (``--data.input_key prompt --data.apply_chat_template``).

OpenRLHF hands ``reward_func`` the decoded prompt+response (special tokens kept) and the prompt text; the response is
what follows the prompt, without the trailing end-of-turn tokens (``<|im_end|>``, ``<|endoftext|>``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gdpo_verl_plugins.openrlhf.rewards import reward_func as _reward_func

from gdpo_verl.rewards import tool_calling

KEYS = ("format", "correctness")
_TRAILING_SPECIAL = re.compile(r"(?:<\|[A-Za-z0-9_]+\|>\s*)+$")


def response_text(query: str, prompt: str) -> str:
    if not query.startswith(prompt):
        raise ValueError(
            "the decoded query does not start with the prompt text (the tokenizer does not round-trip the prompt); "
            "the response cannot be cut out of it"
        )
    return _TRAILING_SPECIAL.sub("", query[len(prompt) :])


def components(query: str, prompt: str, label: Any) -> dict[str, float]:
    response = response_text(query, prompt)
    if isinstance(label, Mapping):
        label = label.get("ground_truth")
    return {"format": tool_calling.format(response, label), "correctness": tool_calling.correctness(response, label)}


reward_func = _reward_func(components, KEYS)
