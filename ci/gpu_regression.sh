#!/usr/bin/env bash
# GPU regression: Qwen2.5-0.5B-Instruct on GSM8K with three rewards (correct, integer, format), GDPO then GRPO with
# identical settings (examples/gsm8k_qwen2_5_1_5b.sh, scaled down), then ci/check_results.py on both metric logs.
# Needs verl with vLLM (pip install -e ".[gpu]") and, on first use, network access for the model and GSM8K.
#
# Env: CI_MODEL (Qwen/Qwen2.5-0.5B-Instruct), CI_STEPS (40), CI_GPUS (all visible GPUs), CI_BACKEND (fsdp2 or
#   megatron), CI_LR (3e-6), CI_OUT (./ci-out), DATA_DIR (CI_OUT/data; GSM8K is fetched when missing),
#   CI_SKIP_TRAIN=1 (only re-check the logs already in CI_OUT). Extra arguments go to both runs as Hydra overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${CI_OUT:-ci-out}")
DATA=${DATA_DIR:-$OUT/data}
GPUS=${CI_GPUS:-$(nvidia-smi -L | grep -c '^GPU')}
mkdir -p "$OUT" "$DATA/gsm8k"

for split in train test; do
  if [[ ! -f $DATA/gsm8k/$split.parquet ]]; then
    python scripts/prepare_gsm8k.py --hub --split "$split" --output "$DATA/gsm8k/$split.parquet"
  fi
done

# Same settings for both estimators; only --gdpo/--grpo differs.
export DATA_DIR=$DATA MODEL_PATH=${CI_MODEL:-Qwen/Qwen2.5-0.5B-Instruct} BACKEND=${CI_BACKEND:-fsdp2}
export NNODES=1 GPUS_PER_NODE=$GPUS ACTOR_TP=1 ACTOR_PP=1 ROLLOUT_TP=1 ROLLOUT_MEM=0.5
export TRAIN_BSZ=64 MINI_BSZ=32 N=8 MAX_PROMPT=512 MAX_RESPONSE=512 LR=${CI_LR:-3e-6}
export LOGGER="['console','file']" PROJECT=gdpo_ci TEST_FREQ=10 SAVE_FREQ=-1
OVERRIDES=(trainer.total_training_steps="${CI_STEPS:-40}" data.val_max_samples=512 trainer.resume_mode=disable "$@")
RECIPE=examples/gsm8k_qwen2_5_1_5b.sh

gdpo-verl doctor
for est in gdpo grpo; do
  # CPU preflight: the exact command line composes with verl's config and fits the model and GPUs
  gdpo-verl check --script "$RECIPE" -- "--$est" "${OVERRIDES[@]}"
done

if [[ ${CI_SKIP_TRAIN:-0} != 1 ]]; then
  for est in gdpo grpo; do
    rm -f "$OUT/$est.jsonl"
    # verl's file logger runs in the TaskRunner actor: hand it the path through Ray's runtime_env
    EXP_NAME=ci_$est CKPT_DIR=$OUT/ckpt/$est bash "$RECIPE" "--$est" "${OVERRIDES[@]}" \
      "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH=$OUT/$est.jsonl" 2>&1 | tee "$OUT/$est.log"
  done
fi

python ci/check_results.py --run gdpo="$OUT/gdpo.jsonl" --run grpo="$OUT/grpo.jsonl" \
  --thresholds ci/thresholds.yaml | tee "$OUT/results.txt"
