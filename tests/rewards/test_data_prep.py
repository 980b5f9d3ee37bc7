"""Data preparation scripts on small synthetic inputs shaped like the paper's datasets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from gdpo_verl.rewards import code_rewards, gsm8k, math_rewards, tool_calling

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, records, tmp_path: Path, suffix: str = ".jsonl") -> pd.DataFrame:
    src = tmp_path / f"in{suffix}"
    if suffix == ".jsonl":
        src.write_text("\n".join(json.dumps(r) for r in records))
    elif suffix == ".json":
        src.write_text(json.dumps(records))
    else:
        pd.DataFrame(records).to_parquet(src)
    out = tmp_path / "out.parquet"
    module = load(name)
    assert module.cli(module.convert, "", "x", argv=["--input", str(src), "--output", str(out)]) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    for prompt in df["prompt"]:
        assert all({"role", "content"} <= set(m) for m in prompt)
    return df


def test_gsm8k(tmp_path):
    recs = [
        {"question": "Janet has 3 apples and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"},
        {"question": "Big?", "answer": "#### 1,200"},
        {"question": "", "answer": "#### 1"},
    ]
    df = run("prepare_gsm8k", recs, tmp_path)
    assert len(df) == 2
    gts = [rm["ground_truth"] for rm in df["reward_model"]]
    assert gts == ["5", "1200"]
    assert gsm8k.correct("<think>a</think>\n<answer>5</answer>", gts[0]) == 1.0


def test_deepscaler(tmp_path):
    recs = [
        {"problem": "What is $1/2 + 1/4$?", "answer": "\\frac{3}{4}", "solution": "..."},
        {"problem": "No answer", "answer": ""},
    ]
    df = run("prepare_deepscaler", recs, tmp_path, ".json")
    assert len(df) == 1 and df["ability"][0] == "math"
    assert "\\boxed{}" in df["prompt"][0][0]["content"]
    assert math_rewards.correct("so $\\boxed{0.75}$", df["reward_model"][0]["ground_truth"]) == 1.0


def test_eurus_code(tmp_path):
    tests = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})
    recs = [
        {
            "data_source": "taco",
            "prompt": [{"role": "user", "content": "Add two numbers."}],
            "ability": "code",
            "reward_model": {"style": "rule", "ground_truth": tests},
            "extra_info": {"split": "train", "index": 0},
        },
        {
            "data_source": "numina",
            "prompt": [{"role": "user", "content": "1+1?"}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": "2"},
            "extra_info": {"split": "train", "index": 1},
        },
        {
            "data_source": "apps",
            "prompt": [{"role": "user", "content": "Broken"}],
            "ability": "code",
            "reward_model": {"style": "rule", "ground_truth": "{not json"},
            "extra_info": {"split": "train", "index": 2},
        },
    ]
    df = run("prepare_eurus_code", recs, tmp_path, ".parquet")
    assert len(df) == 1 and df["data_source"][0] == "taco"
    gt = df["reward_model"][0]["ground_truth"]
    assert code_rewards.parse_tests(gt)["mode"] == "stdio"


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_toolrl(tmp_path, suffix):
    gold = (
        '<think>placeholder</think>\n<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n'
        "</tool_call>"
    )
    recs = [
        {"instruction": "You can call tools: get_weather(city).", "input": "Weather in Paris?", "output": gold},
        {"instruction": "sys", "input": "Hi", "output": "<think>x</think>\n<response>Hello!</response>"},
        {"instruction": "sys", "input": "bad", "output": "<tool_call>\n{oops\n</tool_call>"},
    ]
    df = run("prepare_toolrl", recs, tmp_path, suffix)
    assert len(df) == 2
    gt = df["reward_model"][0]["ground_truth"]
    assert "<think>" not in gt
    resp = '<think>call it</think>\n<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>'
    assert tool_calling.correctness(resp, gt) == 3.0 and tool_calling.format(resp, gt) == 1.0
    assert [m["role"] for m in df["prompt"][0]] == ["system", "user"]
