#!/usr/bin/env bash
# Paper §4.2 math + length (Table 7): DeepSeek-R1-Distill-Qwen-7B (28 heads / 4 KV heads), DAPO, 500 steps.
# Usage: bash examples/math_r1_distill_7b.sh [--grpo] [--fsdp2] [hydra overrides...] (knobs: common.sh)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tasks.sh"
parse_flags "$@"
RUN=math_r1-7b
MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-7B}
ACTOR_TP=${ACTOR_TP:-2} ACTOR_PP=${ACTOR_PP:-1} ROLLOUT_TP=${ROLLOUT_TP:-2}
# 7.6B actor states on TP 2 take ~32 GiB of each 80 GiB GPU (gdpo-verl check shows the arithmetic): vLLM gets 50%.
ROLLOUT_MEM=${ROLLOUT_MEM:-0.5}
math_task
