#!/usr/bin/env bash
# GSM8K three rewards (the GDPO repository's TRL recipe): Qwen2.5-1.5B-Instruct, correct + integer + format.
# Usage: bash examples/gsm8k_qwen2_5_1_5b.sh [--grpo] [--fsdp2] [hydra overrides...] (knobs: common.sh)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/tasks.sh"
parse_flags "$@"
RUN=gsm8k_qwen2.5-1.5b
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-1.5B-Instruct}
ACTOR_TP=${ACTOR_TP:-2} ACTOR_PP=${ACTOR_PP:-1} ROLLOUT_TP=${ROLLOUT_TP:-1}
gsm8k_task
