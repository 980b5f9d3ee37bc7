"""DeepScaleR (agentica-org/DeepScaleR-Preview-Dataset) -> verl RL parquet for the math suite.

python scripts/prepare_deepscaler.py --input deepscaler.json --output data/deepscaler/train.parquet
python scripts/prepare_deepscaler.py --hub --output data/deepscaler/train.parquet
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from gdpo_verl.rewards.data import Row, cli, first, make_row

INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."


def convert(rec: Mapping[str, Any], index: int, split: str) -> Row | None:
    problem, answer = first(rec, "problem", "question"), first(rec, "answer", "final_answer")
    if not problem or answer is None or str(answer).strip() == "":
        return None
    prompt = [{"role": "user", "content": f"{problem} {INSTRUCTION}"}]
    return make_row(
        "agentica-org/DeepScaleR-Preview-Dataset",
        prompt,
        "math",
        str(answer).strip(),
        split,
        index,
        solution=first(rec, "solution", default=""),
    )


if __name__ == "__main__":
    sys.exit(cli(convert, __doc__, "agentica-org/DeepScaleR-Preview-Dataset"))
