#!/usr/bin/env bash
# Arms x seeds of a quickstart task with real verl on CPU, then the median/min-max figure and the paired table.
#   bash scripts/cpu_study.sh [OUT] [STEPS] [SEEDS]      (defaults: gdpo_study 60 3; ~20 min on 2 cores)
# Environment knobs (the defaults reproduce the first study of docs/cpu-study.md):
#   TASK=find_digit|two_binary   ARMS="gdpo grpo" (from the list below)   NICE=0 (niceness of every run)
#   QUICKSTART_ARGS="..."  extra `gdpo-verl quickstart` options for every run (e.g. "--batch-size 8 --n 8 --lr 1e-2")
#   OVERRIDES="..."        extra verl overrides for every run (e.g. "actor_rollout_ref.actor.ppo_epochs=4")
# Arms: grpo; gdpo; gdpo_cond (the task's second reward counts only when its first is 1, paper Eq. 8);
#   saturation, cv and conflict (+algorithm.gdpo.aggregation=<arm>, default options; docs/aggregations.md).
# Seed-major order; a finished run (summary.json with returncode 0) is kept, so an interrupted study resumes (an
# unfinished run is replaced: --overwrite).
set -euo pipefail
out="${1:-gdpo_study}"
steps="${2:-60}"
seeds="${3:-3}"
task="${TASK:-find_digit}"
arms="${ARMS:-gdpo grpo}"
nice_level="${NICE:-0}"
read -r -a qs_args <<< "${QUICKSTART_ARGS:-}"
read -r -a common <<< "${OVERRIDES:-}"
case "$task" in
  find_digit) cond='+algorithm.gdpo.conditions={format:{on:correct,threshold:1.0}}' ;;
  two_binary) cond='+algorithm.gdpo.conditions={letter:{on:digit,threshold:1.0}}' ;;
  *) echo "unknown TASK=$task (find_digit, two_binary)" >&2; exit 2 ;;
esac
arm_override() {  # the arm's own verl override (none for grpo and gdpo)
  case "$1" in
    grpo | gdpo) ;;
    gdpo_cond) echo "$cond" ;;
    saturation | cv | conflict) echo "+algorithm.gdpo.aggregation=$1" ;;
    *) echo "unknown arm $1 (grpo gdpo gdpo_cond saturation cv conflict)" >&2; return 2 ;;
  esac
}
for arm in $arms; do arm_override "$arm" > /dev/null; done
for ((seed = 0; seed < seeds; seed++)); do
  for arm in $arms; do
    run="$out/$arm/seed$seed"
    grep -qs '"returncode": 0' "$run/summary.json" && continue  # finished before
    est=gdpo; [[ "$arm" == grpo ]] && est=grpo
    overrides=("${common[@]}"); own="$(arm_override "$arm")"; [[ -n "$own" ]] && overrides+=("$own")
    echo "== $(date -u +%H:%M:%S) $arm, seed $seed"
    again=(); [[ -e "$run" ]] && again=(--overwrite)  # an unfinished or failed run is replaced
    nice -n "$nice_level" gdpo-verl quickstart --task "$task" --steps "$steps" --seed "$seed" --estimator "$est" \
      --out "$run" "${again[@]}" "${qs_args[@]}" -- "${overrides[@]}" || echo "!! $arm seed $seed failed"
  done
done
gdpo-verl analyze study "$out" --out "$out/study.png" --json "$out/study.json"
