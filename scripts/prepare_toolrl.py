"""ToolRL rlla_4k -> verl RL parquet for the tool suite (format / correctness).

Accepts ToolRL's raw records (``instruction`` = system prompt with the tool list and output format, ``input`` =
the dialogue, ``output`` = the gold answer with ``<tool_call>``/``<response>`` blocks) and records already in verl's
layout (``prompt`` chat list + ``reward_model.ground_truth``). The gold's ``<think>`` part (a placeholder in the RL
data) is dropped from the ground truth. Records whose gold tool calls are not valid JSON are dropped.

    python scripts/prepare_toolrl.py --input dataset/rlla_4k_raw/rlla_rl.json --output data/toolrl/train.parquet
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from gdpo_verl.rewards.data import Row, cli, first, make_row
from gdpo_verl.rewards.tool_calling import parse_ground_truth

_THINK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def convert(rec: Mapping[str, Any], index: int, split: str) -> Row | None:
    rm = rec.get("reward_model") if isinstance(rec.get("reward_model"), Mapping) else {}
    gold = first(rm, "ground_truth") or first(rec, "output", "answer", "ground_truth")
    if not isinstance(gold, str) or not gold.strip():
        return None
    gold = _THINK.sub("", gold).strip()
    try:
        parse_ground_truth(gold)
    except (ValueError, TypeError):
        return None
    prompt = rec.get("prompt")
    if prompt is None or isinstance(prompt, str) or len(prompt) == 0:
        system, user = first(rec, "instruction", "system", default=""), first(rec, "input", "query", default=prompt)
        if not user:
            return None
        prompt = ([{"role": "system", "content": str(system)}] if system else []) + [
            {"role": "user", "content": str(user)}
        ]
    else:
        prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    return make_row(str(rec.get("data_source") or "rlla"), prompt, "tool", gold, split, index)


if __name__ == "__main__":
    sys.exit(cli(convert, __doc__, ""))  # ToolRL ships rlla_4k on GitHub; pass --hub NAME for a hub copy
