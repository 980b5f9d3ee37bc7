"""mbridge building megatron-core's own ("local") layers instead of Transformer Engine's (spec items 5 and 6).

* ``mbridge.core.llm_bridge``: ``LLMBridge._get_transformer_layer_spec`` asks megatron-core for the decoder block
  spec with ``use_transformer_engine=True`` hard-coded (on a machine without Transformer Engine that fails with a
  ``NameError`` on ``TENorm``). The module's reference to ``get_gpt_decoder_block_spec`` is wrapped to ask for the
  local spec.
* ``mbridge.models.qwen2``: in the local spec the layer norms are modules of their own (``input_layernorm``,
  ``pre_mlp_layernorm``) instead of being fused into the next linear layer (``linear_qkv.layer_norm_weight``,
  ``linear_fc1.layer_norm_weight``). The Qwen2 bridge's weight-name maps learn those two names, pointing at the same
  Hugging Face weights.
"""

from __future__ import annotations

import functools
from types import ModuleType

from ...patching import is_patched, mark
from .pins import ShapeChanged, attribute, has_parameters, qualname, source_has

SPEC_MODULE = "mbridge.core.llm_bridge"
QWEN2_MODULE = "mbridge.models.qwen2"
# local-spec name -> (the bridge's map it belongs to, the fused name whose Hugging Face weight it takes)
LOCAL_NORMS = {
    "input_layernorm.weight": ("_OTHER_MAPPING", "_ATTENTION_MAPPING", "self_attention.linear_qkv.layer_norm_weight"),
    "pre_mlp_layernorm.weight": ("_MLP_MAPPING", "_MLP_MAPPING", "mlp.linear_fc1.layer_norm_weight"),
}


def patch_layer_spec(module: ModuleType) -> None:
    where = qualname(module, "get_gpt_decoder_block_spec")
    original = attribute(module, "get_gpt_decoder_block_spec", where)
    if is_patched(original):
        return
    bridge = attribute(module, "LLMBridge", qualname(module, "LLMBridge"))
    getter = attribute(bridge, "_get_transformer_layer_spec", "LLMBridge._get_transformer_layer_spec")
    source_has(getter, ("use_transformer_engine=True",), "mbridge LLMBridge._get_transformer_layer_spec")
    has_parameters(original, ("use_transformer_engine",), "megatron.core get_gpt_decoder_block_spec")

    @functools.wraps(original)
    def get_gpt_decoder_block_spec(*args, **kwargs):
        kwargs["use_transformer_engine"] = False
        return original(*args, **kwargs)

    module.get_gpt_decoder_block_spec = mark(get_gpt_decoder_block_spec)


def patch_qwen2_names(module: ModuleType) -> None:
    cls = attribute(module, "Qwen2Bridge", qualname(module, "Qwen2Bridge"))
    if is_patched(cls.__dict__.get("_OTHER_MAPPING")):
        return
    for local, (target, source, fused) in LOCAL_NORMS.items():
        table = attribute(cls, source, f"Qwen2Bridge.{source}")
        if fused not in table:
            raise ShapeChanged(
                f"gdpo-verl CPU Megatron: mbridge Qwen2Bridge.{source} has no '{fused}' (has {sorted(table)})"
            )
        # a copy on the Qwen2 class: the base class's maps, shared by every bridge, stay as they are
        updated = _Mapping({**attribute(cls, target, f"Qwen2Bridge.{target}"), local: list(table[fused])})
        setattr(cls, target, mark(updated))


class _Mapping(dict):
    """A weight-name map that can carry the patched mark."""
