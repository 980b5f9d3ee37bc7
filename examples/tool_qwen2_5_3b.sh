#!/usr/bin/env bash
# Paper §4.1 tool calling: Qwen2.5-3B-Instruct (16 heads / 2 KV heads, 36 layers), format + correctness, 8 GPUs.
# Usage: bash examples/tool_qwen2_5_3b.sh [--grpo] [--fsdp2] [hydra overrides...] (knobs: common.sh)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tasks.sh"
parse_flags "$@"
RUN=tool_qwen2.5-3b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-3B-Instruct}
ACTOR_TP=${ACTOR_TP:-2} ACTOR_PP=${ACTOR_PP:-1} ROLLOUT_TP=${ROLLOUT_TP:-1}
tool_task
