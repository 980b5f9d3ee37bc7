"""What each GPU must hold: the actor's weights, gradients and optimizer states under the parallel layout and offload
settings, the reference model, and the share vLLM reserves during rollout (no verl import).

verl 0.9.1 (engine_workers.update_weights) moves only the actor's weights off the GPU before rollout, and only with
param_offload; gradients and optimizer states stay unless their own offload is on. vLLM then takes
gpu_memory_utilization of the whole GPU. So the rollout phase needs resident actor (+ reference) + that share, before
any activation memory of the training phase (not estimated here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gdpo_verl.check.parallel import ModelShape
from gdpo_verl.check.report import Finding, info, warn
from gdpo_verl.check.run_plan import data_parallel_size, model_parallel_size, world_size

GIB = 1024**3
DEFAULT_GPU_GIB = 80.0  # an H100/A100 80 GB; `gdpo-verl check --gpu-memory-gib` sets another
# Room left for what is not estimated (activations, CUDA context, NCCL buffers, fragmentation): our estimate, to be
# replaced by the first GPU run's measured peak.
HEADROOM = 0.10


@dataclass(frozen=True)
class Layout:
    """Bytes per parameter and the number of GPUs each kind of state is split over."""

    engine: str
    weight_bytes: int
    grad_bytes: int
    optim_bytes: int
    model_split: int  # GPUs the weights and gradients are split over
    optim_split: int  # GPUs the optimizer states are split over
    offload: tuple[bool, bool, bool]  # weights, gradients, optimizer states kept on the CPU


def actor_layout(cfg: Any) -> Layout:
    actor = cfg.actor_rollout_ref.actor
    if str(actor.strategy) == "megatron":
        meg = actor.megatron
        mp, dp = model_parallel_size(actor), data_parallel_size(cfg)
        distributed = bool(meg.get("use_distributed_optimizer", True))
        offload = (bool(meg.param_offload), bool(meg.get("grad_offload", False)), bool(meg.optimizer_offload))
        # bf16 weights, fp32 main gradients, fp32 master weights + Adam moments (12 B), the latter split over data
        # parallel by the distributed optimizer (verl's default).
        return Layout("Megatron", 2, 4, 12, mp, mp * dp if distributed else mp, offload)
    fsdp = actor.fsdp_config
    offload = (bool(fsdp.param_offload), bool(fsdp.param_offload), bool(fsdp.optimizer_offload))
    # FSDP2 in verl keeps fp32 weights and gradients (bf16 only for compute) and fp32 Adam moments, all sharded.
    return Layout("FSDP2", 4, 4, 8, world_size(cfg), world_size(cfg), offload)


def check_memory(cfg: Any, shape: ModelShape | None, gpu_gib: float = DEFAULT_GPU_GIB) -> list[Finding]:
    params = shape.parameters() if shape is not None else None
    if params is None:
        return [info("memory", "model sizes unknown (no config.json with hidden/intermediate/vocab): not estimated")]
    lay = actor_layout(cfg)
    w_off, g_off, o_off = lay.offload
    weights = 0 if w_off else params * lay.weight_bytes / lay.model_split
    grads = 0 if g_off else params * lay.grad_bytes / lay.model_split
    optim = 0 if o_off else params * lay.optim_bytes / lay.optim_split
    ref = _reference_bytes(cfg, params, lay)
    util = float(cfg.actor_rollout_ref.rollout.gpu_memory_utilization)
    rollout = util * gpu_gib * GIB
    resident = weights + grads + optim + ref
    total = resident + rollout

    def g(x: float) -> str:
        return f"{x / GIB:.1f}"

    arithmetic = (
        f"{lay.engine} actor {params / 1e9:.2f}B params: weights {lay.weight_bytes} B/{lay.model_split} GPUs = "
        f"{g(weights)}{' (offloaded)' if w_off else ''}, grads {lay.grad_bytes} B/{lay.model_split} = {g(grads)}"
        f"{' (offloaded)' if g_off else ''}, optimizer {lay.optim_bytes} B/{lay.optim_split} = {g(optim)}"
        f"{' (offloaded)' if o_off else ''}, reference {g(ref)}; rollout reserves gpu_memory_utilization {util} x "
        f"{gpu_gib:g} GiB = {g(rollout)}; total {g(total)} GiB per GPU"
    )
    if total <= (1 - HEADROOM) * gpu_gib * GIB:
        return [info("memory", f"per-GPU estimate (activations excluded): {arithmetic}")]
    room = (1 - HEADROOM) * gpu_gib - resident / GIB
    fix = (
        f"lower actor_rollout_ref.rollout.gpu_memory_utilization to at most {room / gpu_gib:.2f}, offload "
        "(actor ...param_offload / optimizer_offload), or raise the model-parallel sizes"
        if room > 0
        else "offload the actor's optimizer/weights or raise the model-parallel sizes: the states alone do not fit"
    )
    return [
        warn(
            "memory",
            f"each GPU must hold {g(total)} of its {gpu_gib:g} GiB during rollout before activations, CUDA context "
            f"and communication buffers (less than {HEADROOM:.0%} left; {arithmetic}): vLLM fails to start or the "
            f"first rollout or update runs out of memory; {fix}. Another GPU size: --gpu-memory-gib",
        )
    ]


def _reference_bytes(cfg: Any, params: int, actor: Layout) -> float:
    """bf16 weights of the reference policy (used with a KL loss or KL in the reward), unless offloaded."""
    arr = cfg.actor_rollout_ref
    if not (bool(arr.actor.get("use_kl_loss", False)) or bool(cfg.algorithm.get("use_kl_in_reward", False))):
        return 0.0
    if actor.engine == "Megatron":
        meg = arr.ref.get("megatron") or arr.actor.megatron
        if bool(meg.get("param_offload", False)):
            return 0.0
        split = int(meg.tensor_model_parallel_size) * int(meg.pipeline_model_parallel_size)
        return params * 2 / max(1, split)
    fsdp = arr.ref.get("fsdp_config") or {}
    return 0.0 if bool(fsdp.get("param_offload", False)) else params * 2 / actor.model_split
