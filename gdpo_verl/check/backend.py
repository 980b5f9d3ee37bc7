"""What each verl 0.9.1 backend imports, whether it is importable here, and Megatron-only config pitfalls.

Shared by `gdpo-verl check` (a warning: it usually runs on a CPU machine) and `gdpo-verl doctor --backend`.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires
from typing import Any

from gdpo_verl.check.report import Finding, err, info, warn


@dataclass(frozen=True)
class Module:
    name: str  # what verl imports
    dist: str  # the distribution that provides it (as in verl's Requires-Dist)
    why: str


# verl 0.9.1's imports per backend (read from its source): the Megatron engine imports megatron.core at module level,
# megatron.bridge when use_mbridge=True and vanilla_mbridge=False (the default), Transformer Engine through
# megatron.core's layer specs, flash_attn for the remove-padding log-prob path; FSDP models use
# attn_implementation=flash_attention_2 by default; the vLLM rollout imports vllm.
BACKENDS: dict[str, tuple[Module, ...]] = {
    "megatron": (
        Module("megatron.core", "megatron-core", "the Megatron engine"),
        Module("megatron.bridge", "megatron-bridge", "model conversion (use_mbridge=True, vanilla_mbridge=False)"),
        Module("transformer_engine", "transformer-engine", "Megatron's transformer layers"),
        Module("flash_attn", "flash-attn", "remove-padding log-probs (verl.utils.megatron.tensor_parallel)"),
    ),
    "fsdp2": (Module("flash_attn", "flash-attn", "attn_implementation=flash_attention_2 (verl's default)"),),
    "vllm": (Module("vllm", "vllm", "the vLLM rollout"),),
    "sglang": (Module("sglang", "sglang", "the SGLang rollout"),),
}
VANILLA_MBRIDGE = Module("mbridge", "mbridge", "model conversion (vanilla_mbridge=True)")


def importable(module: str) -> bool:
    """Whether `module` can be found, without importing it (find_spec of a submodule imports only its parents)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def verl_pins() -> dict[str, str]:
    """distribution (normalized) -> version spec, from the installed verl's Requires-Dist (all extras)."""
    try:
        lines = requires("verl") or []
    except PackageNotFoundError:
        return {}
    pins: dict[str, str] = {}
    for line in lines:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*([<>=!~][^;]*)?", line)
        if m and m.group(2):
            pins.setdefault(normalize(m.group(1)), m.group(2).strip())
    return pins


def normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def recipe_backends(cfg: Any) -> list[tuple[str, tuple[Module, ...]]]:
    """The backends a composed config will import: the training engine and the rollout."""
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) == "megatron":
        meg = actor.megatron
        modules = [m for m in BACKENDS["megatron"] if m.name != "megatron.bridge"]
        if bool(meg.get("use_mbridge", True)):
            modules.insert(1, VANILLA_MBRIDGE if bool(meg.get("vanilla_mbridge", False)) else BACKENDS["megatron"][1])
        out = [("megatron", tuple(modules))]
    else:
        attn = (cfg.actor_rollout_ref.model.get("override_config") or {}).get("attn_implementation")
        out = [("fsdp2", BACKENDS["fsdp2"] if attn in (None, "flash_attention_2") else ())]
    rollout = str(cfg.actor_rollout_ref.rollout.get("name") or "")
    if rollout in BACKENDS:
        out.append((rollout, BACKENDS[rollout]))
    return out


def check_backend(cfg: Any, overrides: list[str]) -> list[Finding]:
    out: list[Finding] = []
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) == "megatron" and actor.get("megatron") is None:
        return [
            err(
                "backend",
                "actor_rollout_ref.actor.strategy=megatron without the Megatron engine's config (no "
                "actor_rollout_ref.actor.megatron section): add model_engine=megatron to the command line",
            )
        ]
    for backend, modules in recipe_backends(cfg):
        missing = [m.name for m in modules if not importable(m.name)]
        if missing:
            out.append(
                warn(
                    "install",
                    f"the {backend} backend cannot be imported here ({', '.join(missing)} missing): fine on a CPU "
                    f"machine, fatal on the cluster; run `gdpo-verl doctor --backend {backend}` there",
                )
            )
    out += _recompute(cfg, overrides)
    return out


RECOMPUTE = (
    "actor_rollout_ref.actor.megatron.override_transformer_config.recompute_granularity=full",
    "actor_rollout_ref.actor.megatron.override_transformer_config.recompute_method=uniform",
    "actor_rollout_ref.actor.megatron.override_transformer_config.recompute_num_layers=1",
)


def _recompute(cfg: Any, overrides: list[str]) -> list[Finding]:
    """Only FSDP reads model.enable_gradient_checkpointing; Megatron recomputes only through its transformer config."""
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) != "megatron":
        return []
    otc = actor.megatron.get("override_transformer_config") or {}
    granularity = otc.get("recompute_granularity")
    asked = any(
        o.lstrip("+").startswith("actor_rollout_ref.model.enable_gradient_checkpointing=")
        and o.split("=", 1)[1].strip().lower() == "true"
        for o in overrides
    )
    if granularity:
        return [info("memory", f"Megatron activation recomputation: recompute_granularity={granularity}")]
    if asked:
        return [
            warn(
                "memory",
                "actor_rollout_ref.model.enable_gradient_checkpointing=True does nothing with Megatron (only FSDP "
                "reads it): no activation is recomputed. For long sequences set " + " ".join(RECOMPUTE),
            )
        ]
    return []
