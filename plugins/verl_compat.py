"""Which verl versions each hook was written against. A hook on another version warns once and stays out."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

logger = logging.getLogger("gdpo_verl")

# verl versions whose internals the hooks were checked against (tests/test_verl_hooks.py fails if they move).
SUPPORTED_VERL = ("0.9.0", "0.9.1")


def verl_version() -> str | None:
    try:
        return version("verl")
    except PackageNotFoundError:
        return None


def supported(what: str) -> bool:
    """True if the installed verl is one ``what`` was written for; otherwise log one WARNING and return False."""
    found = verl_version()
    if found in SUPPORTED_VERL:
        return True
    logger.warning(
        "gdpo-verl: %s is not applied: written for verl %s, found %s", what, " / ".join(SUPPORTED_VERL), found
    )
    return False
