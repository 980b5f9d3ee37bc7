"""Which verl versions each hook was written against. A hook on another version warns once and stays out."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

logger = logging.getLogger("gdpo_verl")

# verl versions whose internals each hook was checked against (tests/test_verl_hooks.py fails if they move).
# 0.7.1-0.8.x load plugins only through VERL_USE_EXTERNAL_MODULES=gdpo_verl_plugins.entry (no entry points) and have
# no V1 trainer; 0.9.x loads the entry point itself and defaults to the V1 trainer.
LEGACY_VERL = ("0.7.1", "0.8.0", "0.9.0", "0.9.1")  # estimator registry + legacy trainer
V1_VERL = ("0.9.0", "0.9.1")  # V1 trainer hook
SUPPORTED_VERL = V1_VERL


def verl_version() -> str | None:
    try:
        return version("verl")
    except PackageNotFoundError:
        return None


def supported(what: str, versions: tuple[str, ...] = SUPPORTED_VERL) -> bool:
    """True if the installed verl is one ``what`` was written for; otherwise log one WARNING and return False."""
    found = verl_version()
    if found in versions:
        return True
    logger.warning("gdpo-verl: %s is not applied: written for verl %s, found %s", what, " / ".join(versions), found)
    return False
