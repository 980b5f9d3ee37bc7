"""The `verl.plugins` entry point. verl imports this module (never calls it) in every process at `import verl`.

Everything here stays cheap: each piece only arranges to patch verl when verl imports the module concerned. A piece
that fails is reported with a WARNING (verl itself would log a failing plugin at DEBUG only) and the others still load.
"""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("gdpo_verl")

PIECES = (
    "gdpo_verl_plugins.adv_estimator",  # algorithm.adv_estimator=gdpo -> gdpo_verl (legacy + V1 trainer hooks)
    "gdpo_verl_plugins.reward_manager",  # reward.reward_manager.name=gdpo_multi
    "gdpo_verl_plugins.cpu",  # CPU platform, rollout, Megatron-on-CPU adjustments: only with GDPO_VERL_CPU=1
)

for _name in PIECES:
    try:
        importlib.import_module(_name).install()
    except Exception as _exc:  # noqa: BLE001 - one broken piece must not hide the others
        logger.warning("gdpo-verl: plugin piece %s failed to load: %r", _name, _exc)
