"""GSM8K -> verl RL parquet for the gsm8k suite (correct / integer / format).

python scripts/prepare_gsm8k.py --input gsm8k_train.jsonl --output data/gsm8k/train.parquet
python scripts/prepare_gsm8k.py --hub --split test --output data/gsm8k/test.parquet   # openai/gsm8k, main
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from gdpo_verl.rewards.data import Row, cli, first, make_row

SYSTEM = (
    "Think about the problem inside <think></think>, then give only the final integer answer inside "
    "<answer></answer>, in exactly this layout:\n<think>\n...\n</think>\n<answer>\n...\n</answer>"
)


def convert(rec: Mapping[str, Any], index: int, split: str) -> Row | None:
    question, answer = first(rec, "question", "problem"), first(rec, "answer", "solution")
    if not question or answer is None:
        return None
    answer = str(answer)
    final = answer.split("####")[-1].strip().replace(",", "")
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": str(question)}]
    return make_row("openai/gsm8k", prompt, "math", final, split, index, answer=answer, question=str(question))


if __name__ == "__main__":
    sys.exit(cli(convert, __doc__, "openai/gsm8k", "main"))
