#!/usr/bin/env bash
# Paper §4.3 code (Table 5): R1-Distill-Qwen-7B, pass rate + conditioned length, DAPO, 400 steps.
# Usage: bash examples/code_r1_distill_7b_2rewards.sh [--grpo] [--fsdp2] [hydra overrides...] (knobs: common.sh)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tasks.sh"
parse_flags "$@"
RUN=code_r1-7b-2r
MODEL_PATH=${MODEL_PATH:-deepseek-ai/DeepSeek-R1-Distill-Qwen-7B}
ACTOR_TP=${ACTOR_TP:-2} ACTOR_PP=${ACTOR_PP:-1} ROLLOUT_TP=${ROLLOUT_TP:-2}
# 7.6B actor states on TP 2 take ~32 GiB of each 80 GiB GPU (gdpo-verl check shows the arithmetic): vLLM gets 50%.
ROLLOUT_MEM=${ROLLOUT_MEM:-0.5}
code_task 2
