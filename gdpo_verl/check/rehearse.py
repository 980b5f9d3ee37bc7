"""`gdpo-verl check --rehearse --script examples/<recipe>.sh`: run the recipe's own composed verl command on this CPU
for one step with a checkpoint, then resume it for a second step, before any GPU is paid for.

Kept from the recipe: the trainer path, backend and model-parallel layout (data parallel mapped to 1), the reward
manager and its rewards, the estimator and its options (aggregation, conditions), the KL settings, the optimizer and
every other override. Shrunk: the model (a random one of the recipe's architecture with head and layer counts that
the layout divides, and a byte-level tokenizer trained on the rows), the batch (2 prompts, at most 4 responses each),
the response length (16 tokens) and the data (the first rows of the recipe's training file when it is here, else
synthetic rows of the recipe's schema). Substituted, and printed: the rollout (`hf_cpu` for vLLM), and DAPO's group
filter when the recipe turns it on (a random model's rewards rarely vary within a group, so the filter would draw
batches forever; `gdpo-verl check` validates its metric statically).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdpo_verl.check.compose import Composer, _override_key
from gdpo_verl.check.parallel import ModelShape, known_model_shape, load_model_shape
from gdpo_verl.quickstart.assets import train_tokenizer

PROMPTS, MAX_N, RESPONSE_TOKENS = 2, 4, 16
# One synthetic row per suite, in the schema of scripts/prepare_*.py (used when the recipe's data is not here).
SYNTHETIC = {
    "math": ("math", "What is 6 times 7? Put the final answer in \\boxed{}.", "42"),
    "gsm8k": ("math", "Tom has 6 bags of 7 apples. How many apples? Answer inside <answer></answer>.", "#### 42"),
    "tool": (
        "tool",
        "What is the weather in Paris? Use the tools.",
        '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>',
    ),
    "code": ("code", "Read two integers and print their sum.", json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})),
}


@dataclass
class Plan:
    overrides: list[str]  # the full main_ppo argument list of the first (saving) run
    substitutions: list[str]  # what is not the recipe's own, printed
    workers: int
    out: Path


def _value(args: Sequence[str], key: str) -> str | None:
    for arg in reversed(args):
        if _override_key(arg) == key:
            return arg.split("=", 1)[1]
    return None


def merge(recipe: Sequence[str], ours: Sequence[str]) -> list[str]:
    """The recipe's overrides with ours replacing any of the same key (ours forced with `++`, which sets a key whether
    or not verl's config has it); config-group choices such as model_engine=megatron are kept as they are."""
    keys = {_override_key(o) for o in ours}
    kept = [o for o in recipe if _override_key(o) not in keys]
    return kept + [o if "." not in _override_key(o) else "++" + o.lstrip("+") for o in ours]


def tiny_shape(real: ModelShape | None, tp: int, pp: int) -> dict[str, int]:
    """A small config of the same family: the query/KV grouping of the real model, KV heads divisible by TP and layers
    by PP."""
    group = real.heads // real.kv_heads if real is not None and real.kv_heads else 2
    kv = tp
    heads = kv * min(group, 4)
    head_dim = 16
    return dict(
        hidden_size=heads * head_dim,
        intermediate_size=2 * heads * head_dim,
        num_hidden_layers=2 * pp,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
    )


def _rows(train_files: Any, suite: str, n: int) -> tuple[list[dict], str]:
    from gdpo_verl.rewards.data import make_row

    paths = [train_files] if isinstance(train_files, str) else list(train_files or [])
    path = os.path.expanduser(str(paths[0])) if paths else ""
    if path.endswith(".parquet") and os.path.isfile(path):
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read_row_group(0).slice(0, n)
        return table.to_pylist(), f"the first {table.num_rows} rows of {path}"
    ability, prompt, truth = SYNTHETIC.get(suite, SYNTHETIC["math"])
    rows = [
        make_row(f"rehearsal_{suite}", [{"role": "user", "content": prompt}], ability, truth, "train", i)
        for i in range(n)
    ]
    return rows, f"{n} synthetic {suite} rows (the recipe's data is not here)"


def _suite(args: Sequence[str]) -> str:
    suite = _value(args, "reward.gdpo_multi.suite")
    if suite:
        return suite
    rewards = _value(args, "reward.gdpo_multi.rewards") or ""
    for name in SYNTHETIC:
        if f"fn:{name}." in rewards:
            return name
    return "math"


def _build_model(out: Path, rows: list[dict], shape: dict[str, int], family: str, max_len: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    fast = train_tokenizer(out, [json.dumps(r, default=str) for r in rows], 512, every_byte=True)
    eos, pad = fast.convert_tokens_to_ids("<|im_end|>"), fast.pad_token_id
    config = AutoConfig.for_model(
        family,
        vocab_size=len(fast),
        tie_word_embeddings=False,
        max_position_embeddings=max_len,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=fast.convert_tokens_to_ids("<|im_start|>"),
        **shape,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).to(torch.float32).save_pretrained(out)
    GenerationConfig(eos_token_id=eos, pad_token_id=pad).save_pretrained(out)


def plan(recipe: Sequence[str], out: Path, composer: Composer | None = None) -> tuple[Plan, list[str]]:
    """(the rehearsal's plan, what it says about itself) for the recipe's composed argument list (composed by the
    checker's ``composer``, so with its config folder, when given)."""
    from omegaconf import OmegaConf

    from gdpo_verl.quickstart.command import CPU_OVERRIDES, MEGATRON_OVERRIDES

    cfg = (composer or Composer()).compose(recipe).cfg
    if cfg is None:
        raise RuntimeError("the recipe's command does not compose; run `gdpo-verl check --script` first")
    arr = cfg.actor_rollout_ref
    megatron = str(arr.actor.strategy) == "megatron"
    tp = int(arr.actor.megatron.tensor_model_parallel_size) if megatron else 1
    pp = int(arr.actor.megatron.pipeline_model_parallel_size) if megatron else 1
    workers = tp * pp
    model_path = str(arr.model.path)
    real = load_model_shape(model_path) or known_model_shape(model_path)
    family = "qwen3" if "qwen3" in model_path.lower() else "qwen2"
    n = min(int(arr.rollout.n), MAX_N)
    mini = PROMPTS if int(cfg.data.train_batch_size) == int(arr.actor.ppo_mini_batch_size) else 1
    prompt_len = int(cfg.data.max_prompt_length)
    files = cfg.data.train_files
    files = OmegaConf.to_container(files) if OmegaConf.is_config(files) else files
    rows, source = _rows(files, _suite(recipe), 4 * PROMPTS)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "train.parquet"
    import pandas as pd

    pd.DataFrame(rows).to_parquet(data)
    shape = tiny_shape(real, tp, pp)
    _build_model(out / "model", rows, shape, family, prompt_len + RESPONSE_TOKENS + 64)
    said = [
        f"substitution: actor_rollout_ref.rollout.name={arr.rollout.name} -> hf_cpu (the CPU rollout)",
        f"shrunk: a random {family} with {shape['num_attention_heads']} heads / {shape['num_key_value_heads']} KV "
        f"heads / {shape['num_hidden_layers']} layers (the real one: "
        f"{f'{real.heads}/{real.kv_heads}/{real.layers}' if real else 'unknown'}); {source}; {PROMPTS} prompts x "
        f"{n} responses of at most {RESPONSE_TOKENS} tokens; data parallel 1 ({workers} CPU worker(s) for "
        f"TP {tp} x PP {pp})",
    ]
    ours = [
        *CPU_OVERRIDES,
        *(MEGATRON_OVERRIDES[1:] if megatron else []),
        f"actor_rollout_ref.model.path={out / 'model'}",
        f"data.train_files={data}",
        f"data.val_files={data}",
        f"data.train_batch_size={PROMPTS}",
        f"data.max_response_length={RESPONSE_TOKENS}",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
        f"actor_rollout_ref.rollout.n={n}",
        f"trainer.n_gpus_per_node={workers}",
        f"ray_kwargs.ray_init.num_gpus={workers}",
        "trainer.logger=[console]",
        "trainer.val_before_train=False",
        "trainer.test_freq=-1",
        "trainer.save_freq=1",
        "trainer.resume_mode=auto",
        "trainer.total_epochs=1000",
        "trainer.total_training_steps=1",
        f"trainer.default_local_dir={out / 'checkpoints'}",
    ]
    if _value(recipe, "reward.gdpo_multi.rewards") is not None:
        ours.append("reward.gdpo_multi.max_workers=0")
    if cfg.algorithm.get("filter_groups") is not None and bool(cfg.algorithm.filter_groups.get("enable", False)):
        ours.append("algorithm.filter_groups.enable=False")
        said.append(
            "substitution: algorithm.filter_groups.enable=True -> False (a random model's rewards rarely vary within a "
            "group, so DAPO would draw batches forever; its metric is checked statically)"
        )
    return Plan(merge(recipe, ours), said, workers, out), said


def environment(out: Path) -> dict[str, str]:
    """The quickstart's environment for a CPU verl run (offline hub, CPU mode on)."""
    from gdpo_verl.quickstart.command import RunConfig
    from gdpo_verl.quickstart.command import environment as cpu_environment

    return {**os.environ, **cpu_environment(RunConfig(out=out)), "GDPO_VERL_CPU": "1"}


def _run(args: list[str], log: Path, timeout_s: float) -> tuple[int, float, list[str]]:
    import subprocess

    start = time.monotonic()
    with open(log, "w") as f:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "verl.trainer.main_ppo", *args],
                env=environment(log.parent),
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
                start_new_session=True,
            )
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = 124
    lines = log.read_text(errors="replace").splitlines()
    return rc, time.monotonic() - start, lines


def _steps(lines: list[str]) -> dict[int, dict[str, float]]:
    """step -> the metrics verl's console logger printed for it."""
    from gdpo_verl.quickstart.console import parse_step

    return dict(parsed for line in lines if (parsed := parse_step(line)) is not None)


def _missing_rewards(metrics: dict[str, float]) -> list[str]:
    """Rewards the manager scored as missing: its function raised, timed out or returned no number on a row."""
    return [
        f"{key.split('/')[1]} ({value:.0%} of the rows)"
        for key, value in metrics.items()
        if key.startswith("gdpo/") and key.endswith("/missing_frac") and value > 0
    ]


def rehearse(recipe: Sequence[str], out: Path, timeout_s: float = 600, composer: Composer | None = None) -> int:
    """Step 1 with a checkpoint, then a resumed run for step 2; 0 when both ran, each step logged."""
    rehearsal, said = plan(recipe, out, composer)
    for line in said:
        print(f"rehearse: {line}", flush=True)
    (out / "command.txt").write_text(
        " ".join(["GDPO_VERL_CPU=1 python -m verl.trainer.main_ppo", *rehearsal.overrides])
    )
    resumed = merge(rehearsal.overrides, ["trainer.total_training_steps=2"])
    runs = [("step 1 + checkpoint", rehearsal.overrides), ("resume + step 2", resumed)]
    for i, (what, args) in enumerate(runs, 1):
        log = out / f"run{i}.log"
        rc, wall, lines = _run(args, log, timeout_s)
        steps = _steps(lines)
        if rc != 0 or i not in steps:
            reason = "timed out" if rc == 124 else f"exit {rc}" if rc else f"step {i} not logged"
            errors = [ln for ln in lines if "Error" in ln or "error:" in ln][-5:] or lines[-15:]
            print(f"rehearse: FAIL at {what} ({reason}, {wall:.0f} s); log {log}", flush=True)
            print("\n".join(f"  {ln[:400]}" for ln in errors))
            return 1
        if i == 2 and 1 in steps:
            print(f"rehearse: FAIL at {what}: it trained step 1 again instead of resuming; log {log}", flush=True)
            return 1
        missing = _missing_rewards(steps[i])
        if missing:
            print(
                f"rehearse: FAIL at {what}: reward(s) missing on the rehearsal's rows: {', '.join(missing)}: the "
                f"reward function raised, timed out or returned no number (the manager's WARNING in {log} says "
                "which); on the cluster those rows would silently get no advantage from that reward",
                flush=True,
            )
            return 1
        print(f"rehearse: {what} ok in {wall:.0f} s", flush=True)
    print(f"rehearse: OK, the recipe's command trained, saved and resumed on this CPU; logs in {out}")
    return 0
