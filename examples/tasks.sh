# shellcheck shell=bash
# The paper's four tasks (sourced after common.sh). Every number is the paper's setting (arXiv 2601.05242 and the
# NVlabs/GDPO scripts) unless an environment variable of the same name overrides it.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# §4.1 tool calling (ToolRL rlla_4k): format + correctness, KL in the reward (the official branch dropped it;
# gdpo-verl applies it, algorithm.gdpo.kl_in_reward=raw), entropy bonus 0.001 (the paper's verl version), 15 epochs:
# 4,000 rows / batch 512 with drop_last = 7 steps per epoch, 105 steps. ToolRL has no held-out split (the paper
# evaluates on BFCL separately): in-training validation scores VAL_SAMPLES training prompts unless VAL_FILES is set.
tool_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/toolrl/train.parquet}
  VAL_FILES=${VAL_FILES:-$TRAIN_FILES}
  TRAIN_BSZ=${TRAIN_BSZ:-512} MINI_BSZ=${MINI_BSZ:-128} MAX_PROMPT=${MAX_PROMPT:-2048}
  MAX_RESPONSE=${MAX_RESPONSE:-1024} LR=${LR:-1e-6} N=${N:-4}
  local keys=format,correctness weights=${WEIGHTS:-1.0,1.0}
  base_args
  backend_args
  add trainer.total_epochs="${EPOCHS:-15}" algorithm.use_kl_in_reward="${KL_IN_REWARD:-True}" \
    algorithm.kl_ctrl.kl_coef=0.001 actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.entropy_coeff=0.001 data.val_max_samples="${VAL_SAMPLES:-256}"
  multi_reward tool "$keys" "$weights"
  estimator_args "$keys" "$weights"
  launch
}

# §4.2 math with a length constraint (DeepScaleR): correctness + length (<= 4000 tokens), DAPO, 500 steps.
# math_task conditioned: the length reward counts only when the answer is correct (paper Eq. 8, Table 4).
math_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/deepscaler/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/math_eval/aime24.parquet}
  TRAIN_BSZ=${TRAIN_BSZ:-512} MINI_BSZ=${MINI_BSZ:-64} MAX_PROMPT=${MAX_PROMPT:-1024}
  MAX_RESPONSE=${MAX_RESPONSE:-8000} LR=${LR:-1e-6} N=${N:-16}
  local keys=correct,length weights=${WEIGHTS:-1.0,1.0} cond=""
  if [[ ${1:-} == conditioned ]]; then cond="{name:length,condition:{on:correct,threshold:1.0}}"; fi
  base_args
  backend_args
  dapo_args
  add trainer.total_training_steps="${STEPS:-500}"
  multi_reward math "$keys" "$weights" "$cond"
  estimator_args "$keys" "$weights"
  launch
}

# §4.3 code (Eurus-2-RL code): pass rate + conditioned length [+ bug-free], the math hyperparameters, 400 steps.
code_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/eurus_code/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/eurus_code/val.parquet}
  TRAIN_BSZ=${TRAIN_BSZ:-512} MINI_BSZ=${MINI_BSZ:-64} MAX_PROMPT=${MAX_PROMPT:-1024}
  MAX_RESPONSE=${MAX_RESPONSE:-8000} LR=${LR:-1e-6} N=${N:-16}
  base_args
  backend_args
  dapo_args
  add trainer.total_training_steps="${STEPS:-400}"
  if [[ $1 == 3 ]]; then
    local keys=pass_rate,length,bug_free weights=${WEIGHTS:-1.0,1.0,1.0}
    multi_reward code "$keys" "$weights"
  else  # the suite has three rewards; list the two explicitly
    local keys=pass_rate,length weights=${WEIGHTS:-1.0,1.0}
    multi_reward "" "$keys" "$weights" "{name:pass_rate,fn:code.pass_rate,timeout_s:120},\
{name:length,fn:code.length,kwargs:{max_tokens:4000},condition:{on:pass_rate,threshold:1.0}}"
  fi
  estimator_args "$keys" "$weights"
  launch
}

# GSM8K, three binary rewards (the GDPO repository's TRL recipe): 16 generations, lr 5e-6 with cosine decay after a
# 10% warmup, 1024 tokens, 1 epoch, KL to the reference 0.04 (TRL's beta, a loss term with the k3 estimator), and
# `correct` scored only inside <answer>...</answer> as the recipe does.
gsm8k_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/gsm8k/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/gsm8k/test.parquet}
  TRAIN_BSZ=${TRAIN_BSZ:-128} MINI_BSZ=${MINI_BSZ:-64} MAX_PROMPT=${MAX_PROMPT:-512}
  MAX_RESPONSE=${MAX_RESPONSE:-1024} LR=${LR:-5e-6} N=${N:-16}
  local keys=correct,integer,format weights=${WEIGHTS:-1.0,1.0,1.0}
  base_args
  backend_args
  cosine_lr 0.1
  add trainer.total_epochs="${EPOCHS:-1}" actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef="${KL_COEF:-0.04}" actor_rollout_ref.actor.kl_loss_type=low_var_kl \
    algorithm.use_kl_in_reward=False
  multi_reward gsm8k "$keys" "$weights" "{name:correct,fn:gdpo_verl.rewards.gsm8k:correct_strict}"
  estimator_args "$keys" "$weights"
  launch
}
