"""The backend settings a recipe uses with what is installed here (examples/common.sh calls this).

    python -m gdpo_verl.check.choices megatron   # verl overrides on stdout, one per line; each choice on stderr
    python -m gdpo_verl.check.choices fsdp2

Environment: MEGATRON_BRIDGE=1 (Megatron-Bridge, vanilla_mbridge=False, instead of mbridge), TE=auto|1|0 (Transformer
Engine), FLASH_ATTN=auto|1|0 (FSDP2's flash_attention_2). `auto` (the default) uses a package when it is installed;
`1` requires it (the run then fails where it is missing), `0` does without it. docs/gpu.md lists what each costs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from gdpo_verl.check.backend import FLASH_ATTN_FSDP, NVIDIA_APEX, TRANSFORMER_ENGINE, importable

ACTOR = "actor_rollout_ref.actor.megatron"
OTC = f"{ACTOR}.override_transformer_config"
# megatron-core's own layers instead of Transformer Engine: its local attention needs padded (bshd) sequences, and
# its torch norm does not take sequence parallelism (mbridge turns it back on unless the transformer config says no).
LOCAL_LAYERS = (
    f"+{OTC}.transformer_impl=local",
    f"{OTC}.attention_backend=local",
    f"{ACTOR}.use_remove_padding=False",
    f"{ACTOR}.sequence_parallel=False",
    "actor_rollout_ref.ref.megatron.sequence_parallel=False",
    f"+{OTC}.sequence_parallel=False",
)
NO_FUSED_SOFTMAX = (f"+{OTC}.masked_softmax_fusion=False",)  # the kernel comes from apex (or TE's own softmax)
SDPA = (
    "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
    "actor_rollout_ref.model.use_remove_padding=False",  # packed sequences need flash attention's varlen kernels
)


def _wanted(knob: str, env: dict[str, str]) -> str:
    value = env.get(knob, "auto").strip().lower() or "auto"
    if value not in ("auto", "1", "0"):
        raise ValueError(f"{knob}={value!r}: expected auto, 1 or 0")
    return value


def _use(knob: str, module: str, env: dict[str, str], have: Callable[[str], bool]) -> tuple[bool, str]:
    wanted = _wanted(knob, env)
    if wanted == "auto":
        found = have(module)
        return found, f"{'installed' if found else 'not installed'} ({knob}=auto)"
    return wanted == "1", f"{knob}={wanted}"


def megatron_choice(env: dict[str, str], have: Callable[[str], bool] = importable) -> tuple[list[str], list[str]]:
    """(overrides, one line per choice) for verl's Megatron engine."""
    bridge = env.get("MEGATRON_BRIDGE", "0").strip() == "1"
    out = [f"{ACTOR}.vanilla_mbridge={not bridge}"]
    said = [
        "bridge: Megatron-Bridge (vanilla_mbridge=False, MEGATRON_BRIDGE=1)"
        if bridge
        else "bridge: mbridge (vanilla_mbridge=True; MEGATRON_BRIDGE=1 opts in to Megatron-Bridge)"
    ]
    te, why = _use("TE", TRANSFORMER_ENGINE.name, env, have)
    if te:
        said.append(f"Transformer Engine {why}: transformer_impl=transformer_engine (verl's default)")
    else:
        out += LOCAL_LAYERS
        said.append(f"Transformer Engine {why}: transformer_impl=local; {TRANSFORMER_ENGINE.without}")
        apex, why = _use("APEX", NVIDIA_APEX.name, env, have)
        if not apex:
            out += NO_FUSED_SOFTMAX
            said.append(f"NVIDIA apex {why}: masked_softmax_fusion=False")
    return out, said


def fsdp2_choice(env: dict[str, str], have: Callable[[str], bool] = importable) -> tuple[list[str], list[str]]:
    """(overrides, one line per choice) for verl's FSDP2 engine."""
    flash, why = _use("FLASH_ATTN", FLASH_ATTN_FSDP.name, env, have)
    if flash:
        return [], [f"flash-attn {why}: attn_implementation=flash_attention_2 (verl's default), packed sequences"]
    return list(SDPA), [f"flash-attn {why}: {FLASH_ATTN_FSDP.without}"]


CHOICES = {"megatron": megatron_choice, "fsdp2": fsdp2_choice}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in CHOICES:
        print(f"usage: python -m gdpo_verl.check.choices {{{','.join(CHOICES)}}}", file=sys.stderr)
        return 2
    try:
        overrides, said = CHOICES[args[0]](dict(os.environ))
    except ValueError as e:
        print(f"recipe: {e}", file=sys.stderr)
        return 2
    for line in said:
        print(f"recipe ({args[0]}): {line}", file=sys.stderr)
    print("\n".join(overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
