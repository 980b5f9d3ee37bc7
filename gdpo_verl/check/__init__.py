"""`gdpo-verl check`: compose a verl command line with verl's Hydra config on CPU and report what would fail.

Modules: ``compose`` (Hydra composition, unknown keys), ``parallel`` (backend, parallel sizes, batch and token
limits), ``rewards`` (GDPO and reward-manager settings), ``run_plan`` (steps, checkpoints, truncation, sampling, KL,
V1 padding), ``memory`` (per-GPU estimate), ``choices`` (the recipes' backend settings from what is installed),
``report`` (findings and their text), ``cli`` (the command, and ``validate_command``, the stable function that
validates a composed command).
"""

from gdpo_verl.check.cli import add_arguments, check_args, run, validate_command
from gdpo_verl.check.report import Finding, errors, render

__all__ = ["Finding", "add_arguments", "check_args", "errors", "render", "run", "validate_command"]
