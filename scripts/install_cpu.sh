#!/usr/bin/env bash
# Install gdpo-verl for a CPU-only machine into the active Python environment, without any CUDA wheel:
# a CPU torch first, verl 0.9.1 without its own (CUDA-pinned) dependencies, then verl's real runtime
# dependencies and this package through its `cpu` extra.
#   bash scripts/install_cpu.sh            # library + CPU training
#   bash scripts/install_cpu.sh --test     # ... plus the test tools
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
extras="cpu"
[[ "${1:-}" == "--test" ]] && extras="cpu,test"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet --no-deps "verl==0.9.1"
python -m pip install --quiet -e "${here}[${extras}]"
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0") and not torch.version.cuda, f"expected the CPU torch 2.13.0, got {torch.__version__}"
print(f"torch {torch.__version__} (CPU build) ok")
PY
