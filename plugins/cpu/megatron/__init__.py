r"""verl's Megatron actor on CPU: the places where megatron-core 0.16.1 and mbridge 0.15.1 assume CUDA.

Each adjustment is applied when verl (through megatron-core / mbridge) imports the module concerned, only in CPU mode
(``GDPO_VERL_CPU=1``), and first checks the exact shape it patches (:mod:`.pins`).
One concern per module:

====  ===============================================  ==========================================================
item  what changes                                     module
====  ===============================================  ==========================================================
1     tensor-parallel RNG tracker on CPU generators    :mod:`.rng`
2-4   ``torch.cuda`` / ``device="cuda"`` per module    :mod:`.device`
3     ``.cuda()`` while the model is built             :mod:`.scoped_cuda`
5-6   mbridge: local layer spec and its norm names     :mod:`.mbridge_spec`
7     optimizer dtype checks (``tensor.type()``)      :mod:`.optimizer_dtype`
8     2-D padding mask on the non-fused softmax        :mod:`.attention_mask`
\-    resuming a torch optimizer (no Apex / TE)         :mod:`.optimizer_load`
====  ===============================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from . import (
    attention_mask,
    device,
    mbridge_spec,
    optimizer_dtype,
    optimizer_load,
    rng,
    scoped_cuda,
)

# patch name -> (module it changes, what it changes there)
PATCHES: dict[str, tuple[str, str]] = {
    "megatron_rng": (rng.MODULE, "_get_cuda_rng_state, _set_cuda_rng_state, torch"),
    **{f"megatron_device:{name}": (name, "torch") for name in device.MODULES},
    **{f"scoped_cuda:{name}": (name, f"{site[0]}.{site[1]}".lstrip(".")) for name, site in scoped_cuda.SITES.items()},
    "mbridge_layer_spec": (mbridge_spec.SPEC_MODULE, "get_gpt_decoder_block_spec"),
    "mbridge_qwen2_names": (mbridge_spec.QWEN2_MODULE, "Qwen2Bridge._OTHER_MAPPING, Qwen2Bridge._MLP_MAPPING"),
    "megatron_optimizer_dtype": (optimizer_dtype.MODULE, "DistributedOptimizer.__init__"),
    **{f"megatron_clip_dtype:{name}": (name, "clip_grad_by_total_norm_fp32") for name in optimizer_dtype.CLIP_MODULES},
    "megatron_optimizer_load": (optimizer_load.MODULE, "DistributedOptimizer.sharded_state_dict"),
    "megatron_attention_mask": (attention_mask.MODULE, "FusedScaleMaskSoftmax.forward_torch_softmax"),
}
APPLY: dict[str, Callable[[ModuleType], None]] = {
    "megatron_rng": rng.patch,
    **{f"megatron_device:{name}": device.patch for name in device.MODULES},
    **{f"scoped_cuda:{name}": scoped_cuda.patch for name in scoped_cuda.SITES},
    "mbridge_layer_spec": mbridge_spec.patch_layer_spec,
    "mbridge_qwen2_names": mbridge_spec.patch_qwen2_names,
    "megatron_optimizer_dtype": optimizer_dtype.patch,
    **{f"megatron_clip_dtype:{name}": optimizer_dtype.patch_clip for name in optimizer_dtype.CLIP_MODULES},
    "megatron_optimizer_load": optimizer_load.patch,
    "megatron_attention_mask": attention_mask.patch,
}
