#!/usr/bin/env bash
# GPU regression of gdpo-verl: one command on one 8-GPU node (pip install -e ".[gpu,test]").
#
#   bash ci/gpu_regression.sh [extra Hydra overrides for every run]
#
# 1. Preflight (CPU, a few minutes): `gdpo-verl doctor` for the Megatron and vLLM backends, `gdpo-verl check
#    --verl-validate` on the exact command line of every run below, and a CPU rehearsal of the behaviour run
#    (`check --rehearse`; CI_SKIP_REHEARSAL=1 skips it). Nothing is launched on the GPUs if any of them fails.
# 2. Exact check (Megatron TP 2, V1 trainer, the path every recipe uses; CI_EXACT_STEPS=2 steps, seed
#    CI_EXACT_SEED): 15 prompts x 6 responses = 90 rows, which V1 pads to 120 (a multiple of lcm(data parallel 4,
#    mini-batch 5 x 6 = 30)) with synthetic rows. verl dumps each step's rollouts (trainer.rollout_data_dir),
#    ci/advantage_tap.py records what the estimator received and the advantages the actor trained on, and
#    ci/recompute_advantages.py recomputes them with ci/reference_gdpo.py, a float64 GDPO that shares no code with
#    gdpo_verl: they must match to 1e-6 (float64 arithmetic on both sides; the source of that tolerance).
# 3. Behaviour (Megatron actor TP 2 x PP 2, vLLM, V1 trainer): Qwen2.5-0.5B-Instruct (14 heads, 2 KV heads, 24
#    layers) on GSM8K, DAPO dynamic sampling (gdpo_signature for GDPO, the summed reward for GRPO), `integer`
#    conditioned on `correct`, KL in the reward; GDPO and GRPO for each seed of CI_SEEDS (1 2 3), CI_STEPS (30)
#    steps, validation at step 0 and every 10 steps.
# 4. ci/check_results.py against ci/thresholds.yaml: invariants (no NaN, GDPO keeps at least as many distinct
#    advantages per group as GRPO would, the filter evicted groups) and reward gains relative to step-0 validation.
#
# Cost (ESTIMATE, not measured; 8 x H100-80GB): preflight 1 min; exact check ~10 min; each behaviour run ~20 min
# (startup 3-5, ~30 s/step, validation); 3 seeds x 2 estimators ~2 h. Total ~2.3 h of the node, ~19 GPU-hours.
# CI_SEEDS=1 cuts it to ~55 min (~7 GPU-hours).
#
# Env: CI_MODEL, CI_STEPS, CI_SEEDS, CI_EXACT_STEPS, CI_LR (3e-6), CI_OUT (./ci-out), DATA_DIR (CI_OUT/data; GSM8K
#   is fetched when missing), CI_GPUS (8), CI_EXACT_SEED (1), CI_SKIP_TRAIN=1 (only re-check what is in CI_OUT),
#   CI_PREFLIGHT_ONLY=1 (stop after the preflight), CI_SKIP_DOCTOR=1 (preflight on a machine without the backends),
#   CI_SKIP_REHEARSAL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(realpath -m "${CI_OUT:-ci-out}")
DATA=${DATA_DIR:-$OUT/data}
SEEDS=${CI_SEEDS:-1 2 3}
mkdir -p "$OUT" "$DATA/gsm8k"

for split in train test; do
  if [[ ! -f $DATA/gsm8k/$split.parquet ]]; then
    python scripts/prepare_gsm8k.py --hub --split "$split" --output "$DATA/gsm8k/$split.parquet"
  fi
done

RECIPE=examples/gsm8k_qwen2_5_1_5b.sh
export DATA_DIR=$DATA MODEL_PATH=${CI_MODEL:-Qwen/Qwen2.5-0.5B-Instruct} NNODES=1 GPUS_PER_NODE=${CI_GPUS:-8}
export TRAIN_BSZ=64 MINI_BSZ=32 N=8 MAX_PROMPT=512 MAX_RESPONSE=512 LR=${CI_LR:-3e-6} ROLLOUT_TP=1 ROLLOUT_MEM=0.5
export LOGGER="['console','file']" PROJECT=gdpo_ci TEST_FREQ=10 SAVE_FREQ=-1
# `integer` counts only when the answer is correct (the manager's conditioned reward); KL in the reward, not a loss.
REWARDS="++reward.gdpo_multi.rewards=[{name:correct,fn:gdpo_verl.rewards.gsm8k:correct_strict},\
{name:integer,condition:{on:correct,threshold:1.0}},{name:format}]"
COMMON=("$REWARDS" algorithm.use_kl_in_reward=True algorithm.kl_ctrl.kl_coef=0.001
  actor_rollout_ref.actor.use_kl_loss=False data.val_max_samples=512 trainer.resume_mode=disable "$@")
EXACT_SEED=${CI_EXACT_SEED:-1}
EXACT=(--megatron --gdpo trainer.total_training_steps="${CI_EXACT_STEPS:-2}" trainer.val_before_train=False
  data.seed="$EXACT_SEED" actor_rollout_ref.rollout.seed="$EXACT_SEED"
  trainer.rollout_data_dir="$OUT/exact/rollouts" "${COMMON[@]}")
EXACT_ENV=(TRAIN_BSZ=15 MINI_BSZ=5 N=6 ACTOR_TP=2 ACTOR_PP=1 USE_V1=True)  # the padded batch above

behaviour() {  # behaviour EST SEED: the Megatron TP2xPP2 DAPO run's script arguments
  echo "--megatron --$1 trainer.total_training_steps=${CI_STEPS:-30} data.seed=$2 actor_rollout_ref.rollout.seed=$2"
}
ray_env() {  # variables the TaskRunner actor needs, through Ray's runtime_env
  local kv
  for kv in "$@"; do printf '+ray_kwargs.ray_init.runtime_env.env_vars.%s\n' "$kv"; done
}

# 1. preflight
if [[ ${CI_SKIP_DOCTOR:-0} != 1 ]]; then gdpo-verl doctor --backend megatron --backend vllm; fi
env "${EXACT_ENV[@]}" gdpo-verl check -q --verl-validate --script "$RECIPE" -- "${EXACT[@]}"
for est in gdpo grpo; do
  # shellcheck disable=SC2046
  DAPO=1 ACTOR_TP=2 ACTOR_PP=2 gdpo-verl check -q --verl-validate --script "$RECIPE" -- \
    $(behaviour "$est" 1) "${COMMON[@]}"
done

# The behaviour run's own command, rehearsed on this node's CPU (a tiny model of its architecture, hf_cpu rollout):
# one step, a checkpoint, a resumed step, on the same trainer path, backend and TP x PP layout (a few minutes).
if [[ ${CI_SKIP_REHEARSAL:-0} != 1 ]]; then
  # shellcheck disable=SC2046
  DAPO=1 ACTOR_TP=2 ACTOR_PP=2 gdpo-verl check -q --script "$RECIPE" --rehearse --rehearse-dir "$OUT/rehearsal" -- \
    $(behaviour gdpo 1) "${COMMON[@]}"
fi

if [[ ${CI_PREFLIGHT_ONLY:-0} == 1 ]]; then exit 0; fi

if [[ ${CI_SKIP_TRAIN:-0} != 1 ]]; then
  # 2. exact check: the tap module is imported by verl in every process (VERL_USE_EXTERNAL_MODULES)
  rm -rf "$OUT/exact"
  tap_env=(GDPO_CI_TAP_DIR="$OUT/exact/tap" VERL_USE_EXTERNAL_MODULES=advantage_tap
    PYTHONPATH="$ROOT/ci:${PYTHONPATH:-}")
  mapfile -t tap_args < <(ray_env "${tap_env[@]}" VERL_FILE_LOGGER_PATH="$OUT/exact/metrics.jsonl")
  env "${tap_env[@]}" "${EXACT_ENV[@]}" EXP_NAME=ci_exact CKPT_DIR="$OUT/ckpt/exact" \
    bash "$RECIPE" "${EXACT[@]}" "${tap_args[@]}" 2>&1 | tee "$OUT/exact.log"

  # 3. behaviour runs
  for seed in $SEEDS; do
    for est in gdpo grpo; do
      run=$est-s$seed
      rm -f "$OUT/$run.jsonl"
      mapfile -t log_args < <(ray_env VERL_FILE_LOGGER_PATH="$OUT/$run.jsonl")
      # shellcheck disable=SC2046
      DAPO=1 ACTOR_TP=2 ACTOR_PP=2 EXP_NAME=ci_$run CKPT_DIR="$OUT/ckpt/$run" \
        bash "$RECIPE" $(behaviour "$est" "$seed") "${COMMON[@]}" "${log_args[@]}" 2>&1 | tee "$OUT/$run.log"
    done
  done
fi

# 4. results (both reported, then the exit status)
status=0
python ci/recompute_advantages.py --dump "$OUT/exact/rollouts" --tap "$OUT/exact/tap" | tee "$OUT/exact.txt" || status=1
runs=()
for seed in $SEEDS; do runs+=(--run "gdpo-s$seed=$OUT/gdpo-s$seed.jsonl" --run "grpo-s$seed=$OUT/grpo-s$seed.jsonl"); done
python ci/check_results.py "${runs[@]}" --thresholds ci/thresholds.yaml | tee "$OUT/results.txt" || status=1
exit $status
