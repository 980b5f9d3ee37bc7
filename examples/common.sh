# shellcheck shell=bash
# Shared parts of the paper recipes (sourced, not run). A recipe sets its paper defaults, then calls
#   parse_flags "$@"; base_args; backend_args; <task>_args; estimator_args KEYS WEIGHTS; launch
#
# Flags (any other argument is passed to verl as a Hydra override, e.g. trainer.total_training_steps=10):
#   --grpo | --gdpo        estimator, same as ESTIMATOR=grpo|gdpo (default gdpo); nothing else changes
#   --fsdp2 | --megatron   training backend, same as BACKEND=fsdp2|megatron (default megatron)
# Environment (the recipe's defaults are the paper's): MODEL_PATH, TRAIN_FILES, VAL_FILES, DATA_DIR, NNODES,
#   GPUS_PER_NODE, ACTOR_TP, ACTOR_PP, ROLLOUT_TP, ROLLOUT_MEM, USE_V1, LOGGER, PROJECT, EXP_NAME, CKPT_DIR,
#   RECOMPUTE (Megatron activation recomputation: full, selective or none; default full),
#   MEGATRON_BRIDGE=1 (Megatron-Bridge instead of mbridge), TE / APEX / FLASH_ATTN = auto|1|0 (use Transformer Engine,
#   NVIDIA apex, flash-attn when installed / require / do without): the recipe prints each choice it makes.
# GDPO_VERL_CHECK_DUMP=<file>: write the overrides, one per line, to <file> and exit 0 instead of launching
#   (this is how `gdpo-verl check --script` reads a recipe).

set -euo pipefail

ARGS=()
EXTRA=()
ESTIMATOR=${ESTIMATOR:-gdpo}
BACKEND=${BACKEND:-megatron}
DATA_DIR=${DATA_DIR:-$HOME/data}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
USE_V1=${USE_V1:-True}
LOGGER=${LOGGER:-"['console','wandb']"}
PROJECT=${PROJECT:-gdpo_paper}

add() { ARGS+=("$@"); }

parse_flags() {
  local a
  for a in "$@"; do
    case $a in
      --grpo) ESTIMATOR=grpo ;;
      --gdpo) ESTIMATOR=gdpo ;;
      --fsdp2) BACKEND=fsdp2 ;;
      --megatron) BACKEND=megatron ;;
      *) EXTRA+=("$a") ;;
    esac
  done
  case $ESTIMATOR in gdpo | grpo) ;; *) echo "ESTIMATOR must be gdpo or grpo, got $ESTIMATOR" >&2; exit 2 ;; esac
  case $BACKEND in megatron | fsdp2) ;; *) echo "BACKEND must be megatron or fsdp2, got $BACKEND" >&2; exit 2 ;; esac
}

# Data, model, batch and trainer settings every run shares. Needs RUN, MODEL_PATH, TRAIN_FILES, VAL_FILES,
# TRAIN_BSZ, MINI_BSZ, MAX_PROMPT, MAX_RESPONSE, LR, N.
base_args() {
  local tokens=$(((MAX_PROMPT + MAX_RESPONSE) * 2))
  add data.train_files="$TRAIN_FILES" data.val_files="$VAL_FILES" \
    data.train_batch_size="$TRAIN_BSZ" data.max_prompt_length="$MAX_PROMPT" \
    data.max_response_length="$MAX_RESPONSE" data.filter_overlong_prompts=True data.truncation=error \
    actor_rollout_ref.model.path="$MODEL_PATH" actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.actor.optim.lr="$LR" actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BSZ" \
    actor_rollout_ref.actor.ppo_epochs=1 actor_rollout_ref.actor.use_dynamic_bsz=True \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$tokens" \
    actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n="$N" \
    actor_rollout_ref.rollout.gpu_memory_utilization="${ROLLOUT_MEM:-0.6}" \
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP" \
    trainer.use_v1="$USE_V1" trainer.nnodes="$NNODES" trainer.n_gpus_per_node="$GPUS_PER_NODE" \
    trainer.logger="$LOGGER" trainer.project_name="$PROJECT" \
    trainer.experiment_name="${EXP_NAME:-${RUN}_${ESTIMATOR}_${BACKEND}}" \
    trainer.val_before_train=True trainer.save_freq="${SAVE_FREQ:-100}" trainer.test_freq="${TEST_FREQ:-25}"
  if [[ -n ${CKPT_DIR:-} ]]; then add trainer.default_local_dir="$CKPT_DIR"; fi
}

# Megatron: actor and ref TP/PP (ref parameters offloaded) and activation recomputation (Megatron ignores
# model.enable_gradient_checkpointing; it recomputes only through its transformer config). FSDP2: the fallback, with
# gradient checkpointing, ref parameters offloaded. Then the settings that depend on what is installed (bridge,
# Transformer Engine, apex, flash-attn), chosen by gdpo_verl.check.choices, which prints each choice.
backend_args() {
  if [[ $BACKEND == megatron ]]; then
    add model_engine=megatron \
      actor_rollout_ref.actor.megatron.tensor_model_parallel_size="$ACTOR_TP" \
      actor_rollout_ref.actor.megatron.pipeline_model_parallel_size="$ACTOR_PP" \
      actor_rollout_ref.ref.megatron.tensor_model_parallel_size="$ACTOR_TP" \
      actor_rollout_ref.ref.megatron.pipeline_model_parallel_size="$ACTOR_PP" \
      actor_rollout_ref.ref.megatron.param_offload=True
    recompute_args "${RECOMPUTE:-full}"
  else
    add actor_rollout_ref.actor.strategy=fsdp2 actor_rollout_ref.ref.fsdp_config.param_offload=True \
      actor_rollout_ref.model.enable_gradient_checkpointing=True
  fi
  installed_args "$BACKEND"
}

installed_args() {
  local chosen line
  chosen=$(python3 -m gdpo_verl.check.choices "$1") || {
    echo "cannot choose the $1 settings (is gdpo-verl installed in this python3?)" >&2
    exit 2
  }
  while IFS= read -r line; do if [[ -n $line ]]; then add "$line"; fi; done <<<"$chosen"
}

# recompute_args full|selective|none: full recomputes every layer's activations in the backward pass (uniform, one
# layer per checkpoint: the least memory, ~30% more compute); selective only the attention core.
recompute_args() {
  local otc=actor_rollout_ref.actor.megatron.override_transformer_config
  case $1 in
    full) add $otc.recompute_granularity=full $otc.recompute_method=uniform $otc.recompute_num_layers=1 ;;
    selective) add $otc.recompute_granularity=selective ;;
    none) ;;
    *) echo "RECOMPUTE must be full, selective or none, got $1" >&2; exit 2 ;;
  esac
}

# cosine_lr WARMUP_RATIO: cosine decay after a linear warmup, in the backend's own optimizer keys.
cosine_lr() {
  local optim=actor_rollout_ref.actor.optim
  add $optim.lr_warmup_steps_ratio="$1"
  if [[ $BACKEND == megatron ]]; then add $optim.lr_decay_style=cosine; else add $optim.lr_scheduler_type=cosine; fi
}

# The multi-reward manager. multi_reward SUITE "k1,k2" "w1,w2" [EXTRA_ENTRIES]: the suite's rewards with the weights
# set (so GRPO sums with the weights GDPO uses), plus extra list entries (e.g. a condition), or SUITE "" for none.
multi_reward() {
  local suite=$1 extra=${4:-} entries="" i
  local -a names ws
  IFS=, read -r -a names <<<"$2"
  IFS=, read -r -a ws <<<"$3"
  for i in "${!names[@]}"; do entries+="{name:${names[$i]},weight:${ws[$i]:-1.0}},"; done
  entries+=$extra
  add reward.reward_manager.name=gdpo_multi "+reward.gdpo_multi.rewards=[${entries%,}]"
  if [[ -n $suite ]]; then add +reward.gdpo_multi.suite="$suite"; fi
}

# estimator_args "k1,k2" "w1,w2": GDPO on the reward components, or GRPO on their weighted sum (ESTIMATOR=grpo).
# With dynamic sampling on (DAPO=1), GDPO keeps groups by their component signature, GRPO by the summed reward.
estimator_args() {
  if [[ $ESTIMATOR == gdpo ]]; then
    add algorithm.adv_estimator=gdpo "+algorithm.gdpo_reward_keys=[$1]" "+algorithm.gdpo_reward_weights=[$2]"
  else
    add algorithm.adv_estimator=grpo
  fi
  if [[ ${DAPO:-0} == 1 ]]; then
    add algorithm.filter_groups.enable=True \
      algorithm.filter_groups.metric="$([[ $ESTIMATOR == gdpo ]] && echo gdpo_signature || echo reward)"
  fi
}

# DAPO recipe of the math and code runs: decoupled clip, token-mean loss, KL loss (mse), no KL in reward.
dapo_args() {
  DAPO=1
  add actor_rollout_ref.actor.clip_ratio_low=0.2 actor_rollout_ref.actor.clip_ratio_high=0.28 \
    actor_rollout_ref.actor.loss_agg_mode=token-mean actor_rollout_ref.actor.use_kl_loss=True \
    actor_rollout_ref.actor.kl_loss_coef=0.0005 actor_rollout_ref.actor.kl_loss_type=mse \
    algorithm.use_kl_in_reward=False actor_rollout_ref.rollout.temperature=1.0 \
    actor_rollout_ref.rollout.val_kwargs.do_sample=True actor_rollout_ref.rollout.val_kwargs.temperature=0.6 \
    actor_rollout_ref.rollout.val_kwargs.top_p=0.95 actor_rollout_ref.rollout.val_kwargs.n="${VAL_N:-4}"
}

launch() {
  ARGS+=(${EXTRA[@]+"${EXTRA[@]}"})
  if [[ -n ${GDPO_VERL_CHECK_DUMP:-} ]]; then
    printf '%s\n' "${ARGS[@]}" >"$GDPO_VERL_CHECK_DUMP"
    exit 0
  fi
  set -x
  exec python3 -m verl.trainer.main_ppo "${ARGS[@]}"
}
