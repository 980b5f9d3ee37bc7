"""verl's padding mask on megatron-core's non-fused softmax (spec item 8).

Without Transformer Engine, attention runs megatron-core's ``DotProductAttention`` and ``FusedScaleMaskSoftmax``
(in its plain PyTorch branch). verl's padded (bshd) forward first moves every sequence's tokens to the left (so all
padding is on the right) and then passes the 2-D ``[batch, seq]`` padding mask, which Transformer Engine ignores for
a causal layer. The plain branch instead applies it to the ``[b, heads, sq, sk]`` scores and fails on the shape. For a
causal layer that mask carries nothing the causal mask does not (right padding never precedes a real token), so a
2-D mask gives way to the causal mask, as with Transformer Engine.
"""

from __future__ import annotations

import functools
from types import ModuleType

from ...patching import is_patched, mark
from .pins import attribute, has_parameters, qualname, source_has

MODULE = "megatron.core.fusions.fused_softmax"


def patch(module: ModuleType) -> None:
    cls = attribute(module, "FusedScaleMaskSoftmax", qualname(module, "FusedScaleMaskSoftmax"))
    where = f"{module.__name__}.FusedScaleMaskSoftmax.forward_torch_softmax"
    original = attribute(cls, "forward_torch_softmax", where)
    if is_patched(original):
        return
    has_parameters(original, ("input", "mask"), where)
    source_has(original, ("mask is None", "get_default_causal_mask(sq)"), where)
    causal = attribute(module, "AttnMaskType", qualname(module, "AttnMaskType")).causal

    @functools.wraps(original)
    def forward_torch_softmax(self, input, mask, *args, **kwargs):
        if mask is not None and mask.dim() == 2 and self.attn_mask_type == causal:
            mask = None
        return original(self, input, mask, *args, **kwargs)

    cls.forward_torch_softmax = mark(forward_torch_softmax)
