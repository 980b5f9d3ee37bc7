"""Everything the quickstart trains on, built locally in a second: tokenizer, random tiny Qwen2, parquet data.

Nothing comes from a model hub. The tokenizer is a byte-level BPE trained with ``tokenizers`` on the task's own text
(a WordLevel tokenizer is silently re-split by ``Qwen2Tokenizer``; byte-level BPE round-trips). Its alphabet is only
the characters the task uses, so the vocabulary stays small and a digit is a likely token even for a random model.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from gdpo_verl.quickstart import task

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB_SIZE = 96
# A random 2-layer Qwen2 of about 80k parameters: big enough to learn the task, small enough for 2 CPU cores.
MODEL_SHAPE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)


@dataclass(frozen=True)
class Assets:
    model_dir: Path  # model + tokenizer (verl's actor_rollout_ref.model.path)
    train_file: Path
    val_file: Path


def _corpus(seed: int, n: int = 2000) -> list[str]:
    rng = random.Random(f"{seed}-corpus")
    lines = []
    for _ in range(n):
        text, digit = task.make_prompt(rng)
        lines.append(f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n{digit}<|im_end|>\n")
    return lines


def build_tokenizer(out: Path, seed: int = 0):
    """Train and save a byte-level BPE tokenizer with a chat template; returns the loaded HF tokenizer."""
    return train_tokenizer(out, _corpus(seed), VOCAB_SIZE)


def train_tokenizer(out: Path, texts: Sequence[str], vocab_size: int, every_byte: bool = False):
    """A byte-level BPE trained on ``texts``, with the chat template and special tokens, saved to ``out``.
    ``every_byte``: the alphabet holds all 256 bytes (any text round-trips), not only those ``texts`` use."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    alphabet = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if every_byte else {}
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False, **alphabet
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_model(out: Path, tokenizer, seed: int = 0) -> int:
    """Save a randomly initialized tiny Qwen2 for ``tokenizer``; returns its parameter count."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=eos,
        pad_token_id=pad,
        **MODEL_SHAPE,
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.save_pretrained(out)
    GenerationConfig(eos_token_id=eos, pad_token_id=pad).save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def write_parquet(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path)


def locate(out_dir: str | Path) -> Assets:
    """Where :func:`build` puts the assets under ``out_dir``."""
    out = Path(out_dir)
    return Assets(
        model_dir=out / "model", train_file=out / "data" / "train.parquet", val_file=out / "data" / "val.parquet"
    )


def build(
    out_dir: str | Path, seed: int = 0, n_train: int = 512, n_val: int = 64, task_module: ModuleType = task
) -> Assets:
    """Build all assets under ``out_dir`` (model/, data/); overwrites what is there. Every task shares the prompts
    (and so the tokenizer) of :mod:`gdpo_verl.quickstart.task`; ``task_module`` writes the data rows."""
    found = locate(out_dir)
    found.model_dir.mkdir(parents=True, exist_ok=True)
    found.train_file.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(found.model_dir, seed)
    n_params = build_model(found.model_dir, tokenizer, seed)
    write_parquet(found.train_file, task_module.make_rows(n_train, seed, "train"))
    write_parquet(found.val_file, task_module.make_rows(n_val, seed, "val"))
    info = {"seed": seed, "vocab": len(tokenizer), "params": n_params, "train": n_train, "val": n_val}
    (Path(out_dir) / "assets.json").write_text(json.dumps(info, indent=2))
    return found
