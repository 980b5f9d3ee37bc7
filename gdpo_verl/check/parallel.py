"""Backend, parallel-size, legacy-key and trainer-path checks of a composed verl config (no verl import)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from gdpo_verl.check.report import Finding, err, info

# Keys verl 0.9.x still composes (legacy_reward_impl.yaml, all null) but never reads.
LEGACY_SECTIONS = {
    "reward_model.reward_manager": "reward.reward_manager.name",
    "reward_model": "reward.reward_model",
    "custom_reward_function": "reward.custom_reward_function",
}


@dataclass(frozen=True)
class ModelShape:
    heads: int
    kv_heads: int
    layers: int | None
    source: str
    hidden: int | None = None  # the sizes below give the parameter count (memory estimate); None when unknown
    intermediate: int | None = None
    vocab: int | None = None
    tied: bool = False
    head_dim: int | None = None

    def parameters(self) -> int | None:
        """Decoder-only transformer with grouped-query attention and a gated MLP (Qwen2/Llama/Qwen3 family), biases
        on q/k/v as Qwen2 has them (a rounding error elsewhere): embeddings (+ an untied LM head), per layer
        attention + MLP + two norms, and the final norm."""
        if None in (self.hidden, self.intermediate, self.vocab, self.layers):
            return None
        h, i, v, n = int(self.hidden), int(self.intermediate), int(self.vocab), int(self.layers)
        d = self.head_dim or h // self.heads
        q, kv = self.heads * d, self.kv_heads * d
        attention = h * q + q + 2 * (h * kv + kv) + q * h
        per_layer = attention + 3 * h * i + 2 * h
        return v * h * (1 if self.tied else 2) + n * per_layer + h


# The paper's models (and the CI model), used when no config.json is at hand, from each model's published config.json:
# (heads, KV heads, layers, hidden, intermediate, vocab, tied embeddings, head_dim).
KNOWN_MODELS = {
    "Qwen2.5-0.5B-Instruct": (14, 2, 24, 896, 4864, 151936, True, None),
    "Qwen2.5-1.5B-Instruct": (12, 2, 28, 1536, 8960, 151936, True, None),
    "Qwen2.5-3B-Instruct": (16, 2, 36, 2048, 11008, 151936, True, None),
    "DeepSeek-R1-Distill-Qwen-1.5B": (12, 2, 28, 1536, 8960, 151936, False, None),
    "DeepSeek-R1-Distill-Qwen-7B": (28, 4, 28, 3584, 18944, 152064, False, None),
    "Qwen3-4B-Instruct-2507": (32, 8, 36, 2560, 9728, 151936, True, 128),
}


def known_model_shape(model_path: str | None) -> ModelShape | None:
    name = os.path.basename(str(model_path or "").rstrip("/"))
    known = KNOWN_MODELS.get(name)
    if not known:
        return None
    heads, kv, layers, hidden, inter, vocab, tied, head_dim = known
    return ModelShape(heads, kv, layers, f"built-in table ({name})", hidden, inter, vocab, tied, head_dim)


def load_model_shape(path: str | None) -> ModelShape | None:
    """Heads, KV heads, layers and sizes from a HF config.json (a file, or a folder holding one)."""
    if not path:
        return None
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    if "num_attention_heads" not in raw and isinstance(raw.get("text_config"), dict):
        raw = raw["text_config"]  # multimodal configs nest the language model
    heads = int(raw["num_attention_heads"])
    return ModelShape(
        heads,
        int(raw.get("num_key_value_heads") or heads),
        raw.get("num_hidden_layers"),
        path,
        raw.get("hidden_size"),
        raw.get("intermediate_size"),
        raw.get("vocab_size"),
        bool(raw.get("tie_word_embeddings", False)),
        raw.get("head_dim"),
    )


def check_trainer(cfg: Any) -> list[Finding]:
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    v1 = bool(cfg.trainer.get("use_v1", False))
    path = "V1 trainer (trainer.use_v1=true)" if v1 else "legacy RayPPOTrainer (trainer.use_v1=false)"
    name = "???" if _missing(rollout, "name") else rollout.name
    backend = (
        f"model_engine={cfg.get('model_engine', '?')}, actor strategy={actor.strategy}, rollout={name} "
        f"TP={rollout.tensor_model_parallel_size}, {cfg.trainer.nnodes} node(s) x {cfg.trainer.n_gpus_per_node} GPU(s)"
    )
    out = [info("trainer", path), info("backend", backend)]
    if _missing(rollout, "name"):
        out.append(err("rollout", "actor_rollout_ref.rollout.name is required (vllm or sglang)"))
    return out


def _missing(node: Any, key: str) -> bool:
    from omegaconf import OmegaConf

    return OmegaConf.is_missing(node, key)


def check_legacy(cfg: Any) -> list[Finding]:
    """Non-null values under sections verl 0.9.x composes but ignores."""
    from omegaconf import OmegaConf

    out = []
    for section in ("reward_model", "custom_reward_function"):
        node = cfg.get(section)
        if node is None:
            continue
        for key, value in _leaves(OmegaConf.to_container(node, resolve=False), section):
            if value is None:
                continue
            new = next(v for k, v in LEGACY_SECTIONS.items() if key == k or key.startswith(k + "."))
            old_root = next(k for k in LEGACY_SECTIONS if key == k or key.startswith(k + "."))
            out.append(
                err(
                    "legacy",
                    f"{key}={value!r} is silently ignored by verl 0.9.x; use {new}{key[len(old_root) :]}",
                )
            )
    return out


def _leaves(node: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _leaves(v, f"{prefix}.{k}")]
    return [(prefix, node)]


def check_parallel(cfg: Any, shape: ModelShape | None) -> list[Finding]:
    n_gpus = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    arr = cfg.actor_rollout_ref
    out: list[Finding] = []
    if shape is None:
        out.append(info("model", "no model config.json at hand: head/layer divisibility not checked"))
    else:
        out.append(
            info("model", f"{shape.heads} heads, {shape.kv_heads} KV heads, {shape.layers} layers from {shape.source}")
        )
    if str(arr.actor.strategy) == "megatron" and arr.actor.get("megatron") is not None:
        out += _megatron("actor_rollout_ref.actor.megatron", arr.actor.megatron, n_gpus, shape)
        if _sizes(arr.ref.megatron) != _sizes(arr.actor.megatron):
            out += _megatron("actor_rollout_ref.ref.megatron", arr.ref.megatron, n_gpus, shape)
    else:
        sp = int(arr.actor.get("ulysses_sequence_parallel_size", 1) or 1)
        out += _divides("actor_rollout_ref.actor.ulysses_sequence_parallel_size", sp, n_gpus, shape, kv=False)
    tp = int(arr.rollout.tensor_model_parallel_size)
    pp = int(arr.rollout.get("pipeline_model_parallel_size", 1) or 1)
    out += _divides("actor_rollout_ref.rollout.tensor_model_parallel_size", tp, n_gpus, shape, kv=True, per=tp * pp)
    out += _batch(cfg)
    return out


def _divides(name: str, size: int, n_gpus: int, shape: ModelShape | None, kv: bool, per: int | None = None) -> list:
    out = []
    per = per or size
    if size < 1 or n_gpus % per:
        product = f" (x the other model-parallel sizes = {per})" if per != size else ""
        out.append(
            err("parallel", f"{name}={size}{product} does not divide the {n_gpus} GPUs (n_gpus_per_node*nnodes)")
        )
    if shape is not None and size >= 1:
        if shape.heads % size:
            out.append(err("parallel", f"{name}={size} does not divide the {shape.heads} attention heads"))
        if kv and shape.kv_heads % size and size % shape.kv_heads:
            out.append(err("parallel", f"{name}={size} and the {shape.kv_heads} KV heads: neither divides the other"))
    return out


def _sizes(meg: Any) -> tuple[Any, ...]:
    keys = ("tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size")
    return tuple(meg.get(k) for k in (*keys, "virtual_pipeline_model_parallel_size"))


def _megatron(name: str, meg: Any, n_gpus: int, shape: ModelShape | None) -> list[Finding]:
    tp, pp = int(meg.tensor_model_parallel_size), int(meg.pipeline_model_parallel_size)
    cp = int(meg.get("context_parallel_size", 1) or 1)
    vpp = int(meg.get("virtual_pipeline_model_parallel_size") or 1)
    out = _divides(f"{name}.tensor_model_parallel_size", tp, n_gpus, shape, kv=False, per=tp * pp * cp)
    if shape is not None and tp >= 1 and shape.kv_heads % tp:
        out.append(
            err(
                "parallel",
                f"{name}.tensor_model_parallel_size={tp} does not divide the "
                f"{shape.kv_heads} KV heads (Megatron needs query groups % TP == 0)",
            )
        )
    if shape is not None and shape.layers and shape.layers % (pp * vpp):
        out.append(
            err(
                "parallel",
                f"{name}: {shape.layers} layers do not split evenly into "
                f"pipeline_model_parallel_size={pp} x virtual={vpp} stages",
            )
        )
    return out


def _batch(cfg: Any) -> list[Finding]:
    bsz, mini = int(cfg.data.train_batch_size), int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size)
    # verl 0.9.1 (workers/config/actor.py) refuses only a mini-batch above the batch; one that does not divide it is
    # legal (the last mini-batch is short, or V1 pads: the run-plan check warns about that)
    if mini > bsz:
        return [err("batch", f"actor.ppo_mini_batch_size={mini} exceeds data.train_batch_size={bsz} (verl refuses it)")]
    return []
