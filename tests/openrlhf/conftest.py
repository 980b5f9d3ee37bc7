"""OpenRLHF tests: openrlhf 0.11.2 installed with --no-deps plus DeepSpeed (see .ci/run); vLLM and flash-attn, which
do not install on a CPU machine, replaced by the test-only stand-ins in stubs/ (appended to sys.path while this
directory's tests run, so real packages win and other tests never see them). Without openrlhf each module skips
(importorskip), unless GDPO_VERL_REQUIRE_OPENRLHF=1 (CI): then the run stops."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

STUBS = Path(__file__).parent / "stubs"
NEEDED_STUBS = [name for name in ("vllm", "flash_attn") if importlib.util.find_spec(name) is None]

if importlib.util.find_spec("openrlhf") is None and os.environ.get("GDPO_VERL_REQUIRE_OPENRLHF") == "1":
    raise pytest.UsageError("GDPO_VERL_REQUIRE_OPENRLHF=1 but openrlhf is not installed (see .ci/run)")


@pytest.fixture(autouse=True, scope="module")
def _stand_ins():
    """The stand-ins on sys.path for this directory's tests only (other tests must keep seeing no vLLM)."""
    if not NEEDED_STUBS:
        yield
        return
    sys.path.append(str(STUBS))
    try:
        yield
    finally:
        sys.path.remove(str(STUBS))
        for name in [m for m in sys.modules if m.split(".")[0] in NEEDED_STUBS]:
            del sys.modules[name]


def stub_pythonpath() -> str:
    """PYTHONPATH for a subprocess (and its Ray workers): the stand-ins only where the real package is absent."""
    parts = [str(STUBS)] if NEEDED_STUBS else []
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)
