# shellcheck shell=bash
# The paper's four tasks (sourced after common.sh). Every number is the paper's setting (arXiv 2601.05242 and the
# NVlabs/GDPO scripts) unless an environment variable of the same name overrides it.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# §4.1 tool calling (ToolRL rlla_4k): format + correctness, KL in the reward (the official branch dropped it;
# gdpo-verl applies it, algorithm.gdpo.kl_in_reward=raw), 15 epochs (~100 steps).
tool_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/toolrl/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/toolrl/test.parquet}
  TRAIN_BSZ=${TRAIN_BSZ:-512} MINI_BSZ=${MINI_BSZ:-128} MAX_PROMPT=${MAX_PROMPT:-2048}
  MAX_RESPONSE=${MAX_RESPONSE:-1024} LR=${LR:-1e-6} N=${N:-4}
  local keys=format,correctness weights=${WEIGHTS:-1.0,1.0}
  base_args
  backend_args
  add trainer.total_epochs="${EPOCHS:-15}" algorithm.use_kl_in_reward="${KL_IN_REWARD:-True}" \
    algorithm.kl_ctrl.kl_coef=0.001 actor_rollout_ref.actor.use_kl_loss=False
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

# GSM8K, three binary rewards (the GDPO repository's TRL recipe): 16 generations, lr 5e-6, 1024 tokens, 1 epoch.
gsm8k_task() {
  TRAIN_FILES=${TRAIN_FILES:-$DATA_DIR/gsm8k/train.parquet}
  VAL_FILES=${VAL_FILES:-$DATA_DIR/gsm8k/test.parquet}
  TRAIN_BSZ=${TRAIN_BSZ:-128} MINI_BSZ=${MINI_BSZ:-64} MAX_PROMPT=${MAX_PROMPT:-512}
  MAX_RESPONSE=${MAX_RESPONSE:-1024} LR=${LR:-5e-6} N=${N:-16}
  local keys=correct,integer,format weights=${WEIGHTS:-1.0,1.0,1.0}
  base_args
  backend_args
  add trainer.total_epochs="${EPOCHS:-1}" actor_rollout_ref.actor.use_kl_loss=False algorithm.use_kl_in_reward=False
  multi_reward gsm8k "$keys" "$weights"
  estimator_args "$keys" "$weights"
  launch
}
