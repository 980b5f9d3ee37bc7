#!/usr/bin/env bash
# Paper §4.2 math + length (Table 7): Qwen3-4B-Instruct (32 heads / 8 KV heads, 36 layers), DAPO, 500 steps.
# Usage: bash examples/math_qwen3_4b.sh [--grpo] [--fsdp2] [hydra overrides...] (knobs: common.sh)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tasks.sh"
parse_flags "$@"
RUN=math_qwen3-4b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen3-4B-Instruct-2507}
ACTOR_TP=${ACTOR_TP:-2} ACTOR_PP=${ACTOR_PP:-1} ROLLOUT_TP=${ROLLOUT_TP:-2}
math_task
