#!/usr/bin/env bash
# Arms x seeds of a quickstart task with real verl on CPU, then the median/min-max figure and the paired table.
#   bash scripts/cpu_study.sh [OUT] [STEPS] [SEEDS]      (defaults: gdpo_study 60 3; ~20 min on 2 cores)
# Environment knobs (defaults reproduce the first study, docs/cpu-study.md):
#   TASK=find_digit|two_binary   ARMS="gdpo grpo" (from the list below)   NICE=0 (niceness of every run)
#   QUICKSTART_ARGS="..."        extra `gdpo-verl quickstart` options for every run (e.g. "--batch-size 8 --n 8")
# Arms: grpo, gdpo, gdpo_cond (the task's second reward counts only when its first is 1, paper Eq. 8),
#   saturation, conflict (+algorithm.gdpo.aggregation=..., default options; docs/aggregations.md).
# Runs in seed-major order; a run already finished (summary.json with returncode 0) is kept, so an interrupted study resumes.
set -euo pipefail
out="${1:-gdpo_study}"
steps="${2:-60}"
seeds="${3:-3}"
task="${TASK:-find_digit}"
arms="${ARMS:-gdpo grpo}"
nice_level="${NICE:-0}"
read -r -a qs_args <<< "${QUICKSTART_ARGS:-}"
case "$task" in
  find_digit) cond='+algorithm.gdpo.conditions={format:{on:correct,threshold:1.0}}' ;;
  two_binary) cond='+algorithm.gdpo.conditions={letter:{on:digit,threshold:1.0}}' ;;
  *) echo "unknown TASK=$task (find_digit, two_binary)" >&2; exit 2 ;;
esac
arm_args() {
  case "$1" in
    grpo) echo "--estimator grpo" ;;
    gdpo) echo "--estimator gdpo" ;;
    gdpo_cond) echo "--estimator gdpo -- $cond" ;;
    saturation | conflict) echo "--estimator gdpo -- +algorithm.gdpo.aggregation=$1" ;;
    *) echo "unknown arm $1 (grpo gdpo gdpo_cond saturation conflict)" >&2; return 2 ;;
  esac
}
for arm in $arms; do arm_args "$arm" > /dev/null; done
for ((seed = 0; seed < seeds; seed++)); do
  for arm in $arms; do
    run="$out/$arm/seed$seed"
    grep -qs '"returncode": 0' "$run/summary.json" && continue  # finished before
    read -r -a a <<< "$(arm_args "$arm")"
    opts=(--task "$task" --steps "$steps" --seed "$seed" --out "$run" "${qs_args[@]}")
    # the arm's options may end with `-- override`: keep them last
    echo "== $(date -u +%H:%M:%S) $arm, seed $seed"
    nice -n "$nice_level" gdpo-verl quickstart "${opts[@]}" "${a[@]}" || echo "!! $arm seed $seed failed"
  done
done
gdpo-verl analyze study "$out" --out "$out/study.png" --json "$out/study.json"
