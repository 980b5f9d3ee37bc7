"""Locally built assets: byte-level BPE tokenizer with a chat template, tiny random Qwen2, parquet data."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from gdpo_verl.quickstart import assets, task  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return assets.build(tmp_path_factory.mktemp("assets"), seed=3, n_train=16, n_val=4)


def test_tokenizer_round_trips_through_autotokenizer(built):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built.model_dir)  # what verl loads (a Qwen2 tokenizer class)
    assert len(tok) <= assets.VOCAB_SIZE
    msgs = [{"role": "user", "content": "find the digit: k 7 q"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)["input_ids"]
    text = tok.decode(ids)
    assert text == "<|im_start|>user\nfind the digit: k 7 q<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(ids, skip_special_tokens=True) == "user\nfind the digit: k 7 q\nassistant\n"
    for d in "0123456789":  # every digit is one token: a random model emits them often
        assert len(tok.encode(d, add_special_tokens=False)) == 1
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None


def test_model_matches_tokenizer_and_is_tiny(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built.model_dir)
    model = AutoModelForCausalLM.from_pretrained(built.model_dir)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert sum(p.numel() for p in model.parameters()) < 200_000
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, len(tok))


def test_parquet_files_and_info(built):
    import pandas as pd

    train, val = pd.read_parquet(built.train_file), pd.read_parquet(built.val_file)
    assert len(train) == 16 and len(val) == 4
    assert list(train.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert (train["data_source"] == task.DATA_SOURCE).all()
    info = json.loads((built.model_dir.parent / "assets.json").read_text())
    assert info["seed"] == 3 and info["train"] == 16


def test_same_seed_same_assets(tmp_path):
    a = assets.build(tmp_path / "a", seed=5, n_train=4, n_val=2)
    b = assets.build(tmp_path / "b", seed=5, n_train=4, n_val=2)
    assert (a.model_dir / "tokenizer.json").read_text() == (b.model_dir / "tokenizer.json").read_text()
    assert (a.model_dir / "model.safetensors").read_bytes() == (b.model_dir / "model.safetensors").read_bytes()
