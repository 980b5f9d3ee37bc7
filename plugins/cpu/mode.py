"""Whether CPU training was asked for in this process, and the names and environment it uses."""

from __future__ import annotations

import os

ENV = "GDPO_VERL_CPU"
ROLLOUT_NAME = "hf_cpu"  # actor_rollout_ref.rollout.name for the transformers rollout
# Environment the CPU run needs in every verl process (set only where the user has not set it).
PROCESS_ENV = {
    "VERL_PLATFORM": "cpu",  # pick our platform, whatever the probing order
    "VERL_ENGINE_DEVICE": "cuda",  # verl registers its FSDP engines for cuda/npu only; they run on a CPU mesh
}


def active() -> bool:
    """Whether CPU mode was asked for in this process (``GDPO_VERL_CPU=1``)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")
