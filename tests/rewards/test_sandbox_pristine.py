"""Pristine case processes: a program cannot read another response's program, output or result, because no process
that held one is an ancestor of its case. Attacks, each run in a GRPO-like group beside honest rollouts that print
the token: scanning ``gc.get_objects()``, walking every frame and module, reading the process's whole memory
(``/proc/self/mem``, freed heap included) and ``ctypes``. Bounded: scans are finite, pytest-timeout per test."""

from __future__ import annotations

import pytest
from code_group import FOUND, HONEST, SCAN, check_group, score_group

from gdpo_verl.rewards.sandbox import isolation_mode

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(isolation_mode() != "namespaces", reason="the attacks run with the full sandbox (root)"),
]

GC_SCAN = (
    SCAN
    + """
import gc, sys
seen = 0
for o in gc.get_objects():
    seen += 1
    if seen > 2_000_000:
        break
    try:
        if isinstance(o, dict):
            for k, v in list(o.items())[:1000]:
                look(k); look(v)
        elif isinstance(o, (list, tuple, set, frozenset)):
            for v in list(o)[:1000]:
                look(v)
        else:
            look(getattr(o, '__dict__', None))
    except Exception:
        pass
"""
    + FOUND
)
FRAME_WALK = (
    SCAN
    + """
import sys
f = sys._getframe()
while f is not None:
    for v in list(f.f_locals.values()) + list(f.f_globals.values()):
        look(v)
        if isinstance(v, (dict, list, tuple)):
            for x in list(v.values() if isinstance(v, dict) else v)[:1000]:
                look(x)
    f = f.f_back
for m in list(sys.modules.values()):
    for v in list(vars(m).values())[:5000]:
        look(v)
"""
    + FOUND
)
MEMORY_READ = (
    SCAN
    + """
budget = 512 << 20
try:
    with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', buffering=0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in addr.split('-'))
            if 'r' not in perms or hi - lo > budget:
                continue
            budget -= hi - lo
            try:
                mem.seek(lo)
                look(mem.read(hi - lo))
            except (OSError, OverflowError, ValueError):
                pass
except OSError:
    pass
"""
    + FOUND
)
CTYPES_HEAP = (  # the audit hook reads its block list at call time: empty it, then read every writable mapping
    SCAN
    + """
import sys
try:
    sys.modules['audit']._BLOCKED_EVENTS = ('-',)
except Exception:
    pass
try:
    import ctypes
    budget = 512 << 20
    for line in open('/proc/self/maps'):
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split('-'))
        if parts[1].startswith('rw') and hi - lo <= budget:
            budget -= hi - lo
            look(ctypes.string_at(lo, hi - lo))
except Exception:
    pass
"""
    + FOUND
)
ATTACKS = {"gc_objects": GC_SCAN, "frame_walk": FRAME_WALK, "memory_read": MEMORY_READ, "ctypes_heap": CTYPES_HEAP}


def test_no_case_sees_another_responses_data():
    # 16 rollouts of one prompt, 8 honest and 8 hostile, alternating: every attack runs right after honest ones,
    # on the same workers and servers, and beside them.
    attacks = list(ATTACKS.values()) * 2
    bodies = [b for pair in zip([HONEST] * 8, attacks, strict=True) for b in pair]
    results = score_group(bodies)
    check_group(bodies, {i for i, b in enumerate(bodies) if b == HONEST}, results)


def test_attacks_do_find_what_the_case_itself_holds():
    """Control: each scan finds the token when the case's own program holds it (so a 0 above means absence)."""
    planted = "PLANTED = 'SECRET' + '0123456789ab'\n"
    for name, body in ATTACKS.items():
        if name == "memory_read":
            continue  # /proc/self/mem of a process that changed its uid is root's
        ((p, _, _),) = score_group([planted + body], gt={"inputs": ["1 2\n"], "outputs": ["SECRET0123456789ab3\n"]})
        assert p == 1.0, name
