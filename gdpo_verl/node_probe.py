"""What one Ray node has, collected on that node for ``gdpo-verl doctor --ray-address``.

Standard library only: :mod:`gdpo_verl.cluster_doctor` ships this module to each node by value, so it also runs on a
node where gdpo-verl is missing. The checks themselves run there in fresh interpreters of the node's own Python:
``gdpo-verl doctor`` (plugin loading, which ``adv_estimator=gdpo`` and ``gdpo_multi`` resolve to, ``--backend``
imports) and, when asked, the code sandbox's self-description (isolation mode, cgroup, seccomp).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

DISTS = ("gdpo-verl", "verl", "ray", "torch")
PLUGIN_DIST = "gdpo-verl"
SANDBOX_INFO = "import json; from gdpo_verl.rewards.sandbox import describe; print(json.dumps(describe()))"


def installed_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _run(cmd: list[str], timeout_s: float) -> dict:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"rc": None, "stdout": "", "stderr": f"did not finish in {timeout_s:.0f} s"}
    except OSError as e:
        return {"rc": None, "stdout": "", "stderr": f"cannot run {cmd[0]}: {e}"}
    return {"rc": proc.returncode, "stdout": proc.stdout[-20000:], "stderr": proc.stderr[-3000:]}


def probe(backends: list[str], sandbox: bool, timeout_s: float = 300.0) -> dict:
    """This node's facts: host, Python, versions, the doctor's run and (with ``sandbox``) the sandbox's."""
    facts: dict = {
        "host": socket.gethostname(),
        "python": sys.executable,
        "versions": {dist: installed_version(dist) for dist in DISTS},
        "env": {k: os.environ[k] for k in ("VERL_USE_EXTERNAL_PLUGINS", "GDPO_VERL_CPU") if k in os.environ},
    }
    if facts["versions"][PLUGIN_DIST] is None:
        return facts
    doctor = [sys.executable, "-m", "gdpo_verl.cli", "doctor", *(a for b in backends for a in ("--backend", b))]
    facts["doctor"] = _run(doctor, timeout_s)
    if sandbox:
        described = _run([sys.executable, "-c", SANDBOX_INFO], timeout_s)
        try:
            facts["sandbox"] = json.loads(described["stdout"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            facts["sandbox_error"] = (described["stderr"].strip().splitlines() or ["no output"])[-1][:300]
    return facts
