"""`gdpo-verl check`: compose a verl command line with verl's Hydra config on CPU and report what would fail.

Modules: ``compose`` (Hydra composition, unknown keys), ``parallel`` (backend, parallel sizes, batch and token
limits), ``rewards`` (GDPO and reward-manager settings), ``report`` (findings and their text), ``cli`` (the command).
"""

from gdpo_verl.check.cli import add_arguments, check_args, run

__all__ = ["add_arguments", "check_args", "run"]
