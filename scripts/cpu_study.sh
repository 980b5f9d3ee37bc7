#!/usr/bin/env bash
# GDPO vs GRPO on the quickstart task with real verl on CPU: SEEDS seeds each, then the median/min-max figure.
#   bash scripts/cpu_study.sh [OUT] [STEPS] [SEEDS]      (defaults: gdpo_study 60 3; ~20 min on 2 cores)
# Runs already finished (summary.json present) are kept, so an interrupted study resumes.
set -euo pipefail
out="${1:-gdpo_study}"
steps="${2:-60}"
seeds="${3:-3}"
for ((seed = 0; seed < seeds; seed++)); do
  for est in gdpo grpo; do
    run="$out/$est/seed$seed"
    [[ -f "$run/summary.json" ]] && continue
    echo "== $est, seed $seed"
    gdpo-verl quickstart --steps "$steps" --seed "$seed" --estimator "$est" --out "$run"
  done
done
gdpo-verl analyze study "$out" --out "$out/study.png" --json "$out/study.json"
