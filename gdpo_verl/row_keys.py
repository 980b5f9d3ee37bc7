"""verl V1 row keys ``{uid}_{session}_{output}``: how the agent loop names a row in TransferQueue, and the ``uid`` of
the V1 rollout dump. A prompt's group is ``{uid}``; a session's outputs share ``{uid}_{session}``."""

from __future__ import annotations

import re

V1_KEY = re.compile(r"^(.*)_(\d+)_(\d+)$")  # groups: uid, session index, output index


def split_v1_key(key: str) -> tuple[str, str, int] | None:
    """``(uid, session, output)`` with ``session`` = ``{uid}_{session index}``; None for a key of another form."""
    match = V1_KEY.match(key)
    return None if match is None else (match[1], f"{match[1]}_{match[2]}", int(match[3]))
