#!/usr/bin/env bash
# Mutation testing of the GDPO math with mutmut: gdpo_verl/core.py, aggregations/, config.py, conditions.py and
# metrics.py, against the tests listed under [tool.mutmut] in pyproject.toml. Slow (minutes to an hour); not part of
# CI. On a shared machine run it under the machine-wide lock:
#
#     flock /tmp/gdpo-heavy.lock timeout 3600 bash scripts/mutation.sh
#
# Prints the score (killed / all, with timeouts counted as killed) and every surviving mutant's name; `mutmut show
# NAME` prints one mutant's diff. Work files go to mutants/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf mutants
python -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" > /dev/null 2>&1 || true
python -m mutmut export-cicd-stats > /dev/null
python - <<'PY'
import json

s = json.load(open("mutants/mutmut-cicd-stats.json"))
killed = s["killed"] + s.get("timeout", 0)
scored = killed + s["survived"]
print(f"mutants: {s['total']}, killed {s['killed']}, timeout {s.get('timeout', 0)}, survived {s['survived']}, "
      f"no tests {s.get('no_tests', 0)}, other {s['total'] - scored - s.get('no_tests', 0)}")
print(f"score (killed + timeout) / (killed + timeout + survived): {killed}/{scored} = {killed / max(scored, 1):.1%}")
PY
python -m mutmut results 2>/dev/null | grep -E ": (survived|no tests)" || true
