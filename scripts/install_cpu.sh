#!/usr/bin/env bash
# Install gdpo-verl for a CPU-only machine into the active Python environment, without any CUDA wheel:
# a CPU torch first, verl 0.9.1 without its own (CUDA-pinned) dependencies, then verl's real runtime
# dependencies and this package through its `cpu` extra.
#   bash scripts/install_cpu.sh            # library + CPU training
#   bash scripts/install_cpu.sh --test     # ... plus the test tools
#   bash scripts/install_cpu.sh --megatron # ... plus verl's Megatron actor on CPU (megatron-core, mbridge, einops)
# The flags combine, in any order: `--test --megatron`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
extras="cpu"
megatron=0
for arg in "$@"; do
  case "$arg" in
    --test) extras="cpu,test" ;;
    --megatron) megatron=1 ;;
    *) echo "install_cpu.sh: unknown option '$arg' (expected --test and/or --megatron)" >&2; exit 2 ;;
  esac
done
python -m pip install --quiet --upgrade pip
# The CPU torch: from wherever pip finds it when that is a CPU build (a local wheel, a mirror), else from PyTorch's CPU
# index (PyPI's Linux x86-64 wheel is the CUDA one). GDPO_VERL_TORCH_INDEX=<url> forces an index, "" forces plain pip.
torch_index=${GDPO_VERL_TORCH_INDEX-auto}
if [[ $torch_index == auto ]]; then
  torch_index=https://download.pytorch.org/whl/cpu
  python -m pip install --dry-run --ignore-installed --no-deps --quiet --report - "torch==2.13.0" 2>/dev/null |
    python -c 'import json,sys; m=json.load(sys.stdin)["install"][0]["metadata"]; sys.exit(not ("+cpu" in m["version"]
or not any(d.startswith("nvidia") for d in m.get("requires_dist") or [])))' && torch_index=""
fi
python -m pip install --quiet ${torch_index:+--index-url "$torch_index"} "torch==2.13.0"
python -m pip install --quiet --no-deps "verl==0.9.1"
python -m pip install --quiet -e "${here}[${extras}]"
if (( megatron )); then
  # Exact pins, without their dependencies (megatron-core's would pull CUDA packages): the CPU adjustments in
  # plugins/cpu/megatron/ are written against these two releases' internals.
  python -m pip install --quiet --no-deps "megatron-core==0.16.1" "mbridge==0.15.1"
  python -m pip install --quiet einops
fi
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0") and not torch.version.cuda, f"expected the CPU torch 2.13.0, got {torch.__version__}"
print(f"torch {torch.__version__} (CPU build) ok")
PY
