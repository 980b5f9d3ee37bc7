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
    without: str = ""  # optional modules: what a run loses without it ("" = required)
    on_cpu: str = ""  # why the CPU install does not have it ("" = the CPU install needs it too)

    @property
    def required(self) -> bool:
        return not self.without


_CUDA_ONLY = "CUDA only"
# verl 0.9.1's imports per backend (read from its source). The Megatron engine imports megatron.core at module level
# and a bridge when use_mbridge=True: `mbridge` with vanilla_mbridge=True (the recipes' choice, installed by [gpu]),
# `megatron.bridge` otherwise (verl's own default). Transformer Engine is used through megatron-core's layer specs
# unless transformer_impl=local; flash_attn is optional in the engine paths (verl.utils.attention_utils and
# torch_functional fall back to pure torch), but FSDP loads the model with attn_implementation=flash_attention_2 by
# default. The `apex` on the package index is an unrelated web toolkit: NVIDIA apex is recognised by
# apex.normalization.
MEGATRON_CORE = Module("megatron.core", "megatron-core", "the Megatron engine")
MBRIDGE = Module("mbridge", "mbridge", "HF <-> Megatron weights with vanilla_mbridge=True (the recipes' choice)")
MEGATRON_BRIDGE = Module(
    "megatron.bridge",
    "megatron-bridge",
    "HF <-> Megatron weights with vanilla_mbridge=False (verl's default)",
    without="only vanilla_mbridge=True works (the recipes' default; MEGATRON_BRIDGE=1 opts in to Megatron-Bridge)",
    on_cpu="needs Python >= 3.12 and Transformer Engine; the CPU path uses mbridge (vanilla_mbridge=True)",
)
TRANSFORMER_ENGINE = Module(
    "transformer_engine",
    "transformer-engine",
    "Megatron's fused transformer layers (transformer_impl=transformer_engine, verl's default)",
    without="the recipes use transformer_impl=local and attention_backend=local (megatron-core's own layers): "
    "unfused attention, padded sequences (use_remove_padding=False), no sequence parallelism: slower steps and "
    "more activation memory",
    on_cpu=f"{_CUDA_ONLY}; the CPU path uses transformer_impl=local",
)
FLASH_ATTN_MEGATRON = Module(
    "flash_attn",
    "flash-attn",
    "fused unpadding and log-prob cross-entropy",
    without="verl unpads and computes log-probs with its pure-torch fallbacks: slower, more memory on large "
    "vocabularies",
    on_cpu=f"{_CUDA_ONLY}; verl uses its pure-torch fallbacks",
)
NVIDIA_APEX = Module(
    "apex.normalization",
    "apex",
    "fused layer norm and masked-softmax kernels",
    without="megatron-core uses torch norms and the recipes set masked_softmax_fusion=False: somewhat slower",
    on_cpu=f"{_CUDA_ONLY}; the CPU path sets masked_softmax_fusion=False",
)
FLASH_ATTN_FSDP = Module(
    "flash_attn",
    "flash-attn",
    "attn_implementation=flash_attention_2 (verl's FSDP default) and packed sequences",
    without="the recipes set attn_implementation=sdpa and use_remove_padding=False: padded sequences, slower steps",
    on_cpu=f"{_CUDA_ONLY}; the CPU path uses sdpa",
)
VLLM = Module("vllm", "vllm", "the vLLM rollout", on_cpu="the CPU install rolls out with hf_cpu")
SGLANG = Module("sglang", "sglang", "the SGLang rollout", on_cpu="the CPU install rolls out with hf_cpu")
BACKENDS: dict[str, tuple[Module, ...]] = {
    "megatron": (MEGATRON_CORE, MBRIDGE, MEGATRON_BRIDGE, TRANSFORMER_ENGINE, FLASH_ATTN_MEGATRON, NVIDIA_APEX),
    "fsdp2": (FLASH_ATTN_FSDP,),
    "vllm": (VLLM,),
    "sglang": (SGLANG,),
}
# Kept for callers that name it: the bridge of vanilla_mbridge=True.
VANILLA_MBRIDGE = MBRIDGE


def importable(module: str) -> bool:
    """Whether `module` can be found, without importing it (find_spec of a submodule imports only its parents)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def requires_pins(dist: str, extra: str | None = None) -> dict[str, str]:
    """distribution (normalized) -> version spec, from the installed ``dist``'s Requires-Dist: every line (``extra``
    None; the first spec of a name wins) or only the lines of ``extra``, markers evaluated here. {} if not installed."""
    from packaging.requirements import Requirement

    try:
        lines = requires(dist) or []
    except PackageNotFoundError:
        return {}
    pins: dict[str, str] = {}
    for line in lines:
        req = Requirement(line)
        if not req.specifier:
            continue
        if extra is not None and (req.marker is None or not req.marker.evaluate({"extra": extra})):
            continue
        pins.setdefault(normalize(req.name), str(req.specifier))
    return pins


def normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def recipe_backends(cfg: Any) -> list[tuple[str, tuple[Module, ...]]]:
    """The modules a composed config cannot run without, per backend: the training engine and the rollout."""
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) == "megatron":
        meg = actor.megatron
        modules = [MEGATRON_CORE]
        if bool(meg.get("use_mbridge", True)):
            modules.append(MBRIDGE if bool(meg.get("vanilla_mbridge", False)) else MEGATRON_BRIDGE)
        otc = meg.get("override_transformer_config") or {}
        if str(otc.get("transformer_impl", "transformer_engine")) == "transformer_engine":
            modules.append(TRANSFORMER_ENGINE)
        out = [("megatron", tuple(modules))]
    else:
        out = [("fsdp2", (FLASH_ATTN_FSDP,) if fsdp_attention(cfg) == "flash_attention_2" else ())]
    rollout = str(cfg.actor_rollout_ref.rollout.get("name") or "")
    if rollout in BACKENDS:
        out.append((rollout, BACKENDS[rollout]))
    return out


def fsdp_attention(cfg: Any) -> str:
    """The attention implementation verl's FSDP engine loads the model with (flash_attention_2 unless overridden)."""
    override = cfg.actor_rollout_ref.model.get("override_config") or {}
    return str(override.get("attn_implementation", "flash_attention_2"))


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
    out += _local_layers(cfg)
    return out


def _local_layers(cfg: Any) -> list[Finding]:
    """megatron-core's own attention (transformer_impl=local) takes only padded sequences: with verl's packed (thd)
    sequences it asserts `packed_seq_params is None` at the first forward."""
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) != "megatron":
        return []
    meg = actor.megatron
    otc = meg.get("override_transformer_config") or {}
    if str(otc.get("transformer_impl", "transformer_engine")) != "local" or not bool(meg.get("use_remove_padding")):
        return []
    return [
        err(
            "backend",
            "transformer_impl=local with actor_rollout_ref.actor.megatron.use_remove_padding=True: megatron-core's "
            "local attention accepts only padded sequences and fails at the first forward pass (after the first "
            "rollout); set actor_rollout_ref.actor.megatron.use_remove_padding=False or use Transformer Engine",
        )
    ]


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
