"""Eurus-2-RL code problems (PRIME-RL/Eurus-2-RL-Data, ability == "code") -> verl RL parquet for the code suite.

Records already in verl's layout keep their prompt; plain records need ``problem``/``question`` and tests as
``{"inputs", "outputs"[, "fn_name"]}`` (in ``ground_truth``, ``tests``, ``test_cases`` or ``input_output``).
Records whose tests our sandbox harness cannot read are dropped (the count is printed).

    python scripts/prepare_eurus_code.py --input eurus_train.parquet --output data/eurus_code/train.parquet
    python scripts/prepare_eurus_code.py --hub --split validation --output data/eurus_code/val.parquet
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from gdpo_verl.rewards.code_rewards import parse_tests
from gdpo_verl.rewards.data import Row, cli, first, make_row

INSTRUCTION = "Write a complete Python 3 program for the problem below. Put the final code in one ```python code block."


def convert(rec: Mapping[str, Any], index: int, split: str) -> Row | None:
    if rec.get("ability") not in (None, "code", "coding"):
        return None
    rm = rec.get("reward_model") if isinstance(rec.get("reward_model"), Mapping) else {}
    tests = first(rm, "ground_truth") or first(rec, "ground_truth", "tests", "test_cases", "input_output")
    try:
        spec = parse_tests(tests)
    except (ValueError, TypeError):
        return None
    gt = (
        {k: spec[k] for k in ("inputs", "outputs", "fn_name") if spec.get(k) is not None}
        if spec["mode"] != "assert"
        else {"asserts": spec["asserts"]}
    )
    prompt = rec.get("prompt")
    if prompt is None or isinstance(prompt, str) or len(prompt) == 0:
        problem = first(rec, "problem", "question", default=prompt)
        if not problem:
            return None
        prompt = [{"role": "user", "content": f"{INSTRUCTION}\n\n{problem}"}]
    else:
        prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    return make_row(
        str(rec.get("data_source") or "PRIME-RL/Eurus-2-RL-Data"), prompt, "code", json.dumps(gt), split, index
    )


if __name__ == "__main__":
    sys.exit(cli(convert, __doc__, "PRIME-RL/Eurus-2-RL-Data"))
