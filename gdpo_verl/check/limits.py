"""Sequence-length and micro-batch checks of a composed verl config (no verl import).

verl checks these only once the first batch of rollouts exists (dynamic-batch token limits), silently truncates
(vLLM's max_model_len), or fails with `int * NoneType` (no micro-batch size without dynamic batching).
"""

from __future__ import annotations

from typing import Any

from gdpo_verl.check.report import Finding, err

ARR = "actor_rollout_ref"


def _seq_parallel(cfg: Any, role: str) -> int:
    """Sequences are split over Ulysses SP (FSDP) or context parallelism (Megatron); the token limit scales with it."""
    node = cfg[ARR][role]
    if str(cfg[ARR].actor.strategy) == "megatron":
        meg = node.get("megatron") or cfg[ARR].actor.get("megatron") or {}
        return int(meg.get("context_parallel_size", 1) or 1)
    return int(node.get("ulysses_sequence_parallel_size", 1) or 1)


def _uses_ref(cfg: Any) -> bool:
    return bool(cfg[ARR].actor.get("use_kl_loss", False)) or bool(cfg.algorithm.get("use_kl_in_reward", False))


def _limits(cfg: Any) -> list[tuple[str, bool, str, int | None, int]]:
    """(section, dynamic bsz on, token-limit key, its value, sequence-parallel size) per forward pass verl runs."""
    arr = cfg[ARR]
    out = [("actor", bool(arr.actor.use_dynamic_bsz), "ppo_max_token_len_per_gpu", None, _seq_parallel(cfg, "actor"))]
    if arr.actor.get("ppo_infer_max_token_len_per_gpu") is not None:
        out.append(("actor", bool(arr.actor.use_dynamic_bsz), "ppo_infer_max_token_len_per_gpu", None, out[0][4]))
    out.append(
        ("rollout", bool(arr.rollout.log_prob_use_dynamic_bsz), "log_prob_max_token_len_per_gpu", None, out[0][4])
    )
    if _uses_ref(cfg):
        ref_sp = _seq_parallel(cfg, "ref")
        out.append(("ref", bool(arr.ref.log_prob_use_dynamic_bsz), "log_prob_max_token_len_per_gpu", None, ref_sp))
    return [(s, dyn, key, arr[s].get(key), sp) for s, dyn, key, _, sp in out]


def check_limits(cfg: Any) -> list[Finding]:
    prompt, response = int(cfg.data.max_prompt_length), int(cfg.data.max_response_length)
    longest = prompt + response
    out: list[Finding] = []
    for section, dynamic, key, value, sp in _limits(cfg):
        if not dynamic or value is None:
            continue
        if int(value) * sp < longest:
            per = f" x sequence-parallel {sp}" if sp > 1 else ""
            out.append(
                err(
                    "limits",
                    f"{ARR}.{section}.{key}={value}{per} is smaller than one full sequence, data.max_prompt_length "
                    f"+ data.max_response_length = {prompt} + {response} = {longest}; with dynamic batch size verl "
                    f"asserts this only after the first rollout. Set it to at least {-(-longest // sp)} "
                    f"(verl's examples use 2-3x that)",
                )
            )
    out += _max_model_len(cfg, longest)
    out += _micro_batches(cfg)
    return out


def _max_model_len(cfg: Any, longest: int) -> list[Finding]:
    value = cfg[ARR].rollout.get("max_model_len")
    if value is None or int(value) >= longest:
        return []
    return [
        err(
            "limits",
            f"{ARR}.rollout.max_model_len={value} < data.max_prompt_length + data.max_response_length = {longest}: "
            f"vLLM silently cuts responses at {value} - prompt tokens; raise it to {longest} or leave it unset",
        )
    ]


def _micro_batches(cfg: Any) -> list[Finding]:
    """Without dynamic batch size every forward pass needs a micro-batch size (verl: `int * NoneType` otherwise)."""
    arr = cfg[ARR]
    wanted = [("actor", bool(arr.actor.use_dynamic_bsz), "ppo_micro_batch_size")]
    wanted.append(("rollout", bool(arr.rollout.log_prob_use_dynamic_bsz), "log_prob_micro_batch_size"))
    if _uses_ref(cfg):
        wanted.append(("ref", bool(arr.ref.log_prob_use_dynamic_bsz), "log_prob_micro_batch_size"))
    out = []
    for section, dynamic, key in wanted:
        node = arr[section]
        if dynamic or node.get(f"{key}_per_gpu") is not None or node.get(key) is not None:
            continue
        flag = "use_dynamic_bsz" if section == "actor" else "log_prob_use_dynamic_bsz"
        out.append(
            err(
                "batch",
                f"{ARR}.{section}.{flag}=False and no micro-batch size: set {ARR}.{section}.{key}_per_gpu "
                f"(e.g. 4) or turn dynamic batch size on ({ARR}.actor.use_dynamic_bsz=True)",
            )
        )
    return out
