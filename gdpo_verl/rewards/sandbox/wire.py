"""Length-prefixed JSON frames between the trusted parent and the sandbox server (stdlib only).

Only trusted code writes these pipes: the server's own stdin/stdout, which no sandboxed process inherits.
"""

from __future__ import annotations

import json
import os
import struct

MAX_FRAME = 256 << 20
_HEADER = struct.Struct(">I")


def write_frame(fd: int, obj) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd: int):
    """The next frame, or None at end of stream."""
    head = read_exact(fd, _HEADER.size)
    if head is None:
        return None
    (n,) = _HEADER.unpack(head)
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes is over the {MAX_FRAME} limit")
    body = read_exact(fd, n)
    if body is None:
        return None
    return json.loads(body)
