"""Nothing outlives a case: each case has its own tmpfs ``/tmp`` and ``/dev/shm`` and its own IPC namespace, gone
with its last process (no recursive delete of a tree the program built); a server that answers with an error is
retired; when the scorer gives up on a response, or the process that scores it dies, the server and every case
process are gone before the call returns (or at once). Bounded: sleeps are finite, pytest-timeout per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from code_group import DEEP_TREE, HONEST, check_group, score_group

from gdpo_verl.rewards import sandbox
from gdpo_verl.rewards.sandbox import Limits, run_cases, server

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(sandbox.isolation_mode() != "namespaces", reason="needs root + unshare"),
]
FILE_FLOOD = """
import os
for d in ('.', '/dev/shm'):  # dir_fd: the audit hook sees only a relative name
    dfd = os.open(d, os.O_RDONLY)
    for i in range(1000000):
        try:
            os.close(os.open(f'f{i}', os.O_CREAT | os.O_WRONLY, dir_fd=dfd))
        except OSError:
            break
"""
PLANT_SHM = """
import os
for d in ('/dev/shm', '/tmp'):  # dir_fd: the audit hook sees only a relative name
    try:
        os.close(os.open('left', os.O_CREAT | os.O_EXCL | os.O_WRONLY, dir_fd=os.open(d, os.O_RDONLY)))
        print('fresh', d)
    except FileExistsError:
        print('existed', d)
"""


def _uids(uid: int) -> list[int]:
    """Processes of ``uid`` on this host."""
    out = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/status") as f:
                if any(line.startswith("Uid:") and int(line.split()[1]) == uid for line in f):
                    out.append(int(p))
        except (OSError, ValueError):
            pass
    return out


def test_trees_and_floods_do_not_reach_later_responses():
    # one worker: every response on the same sandbox server, one after the other
    bodies = [HONEST, DEEP_TREE, HONEST, FILE_FLOOD, HONEST, DEEP_TREE + FILE_FLOOD, HONEST]
    check_group(bodies, {0, 2, 4, 6}, score_group(bodies, max_workers=1))


def test_every_case_has_its_own_tmp_and_shm():
    lim = Limits(wall_s=5)
    first = run_cases(PLANT_SHM, "script", [{"stdin": ""}, {"stdin": ""}], lim)  # two cases of one request
    second = run_cases(PLANT_SHM, "script", [{"stdin": ""}], lim)  # the next request on the same server
    for r in [*first, *second]:
        assert r.stdout.split() == ["fresh", "/dev/shm", "fresh", "/tmp"], r.stdout + r.stderr


def test_a_flood_is_cleaned_inside_the_wall_limit():
    lim = Limits(wall_s=3, tmpfs_inodes=4096)
    (r,) = run_cases(FILE_FLOOD + DEEP_TREE, "script", [{"stdin": ""}], lim)
    assert r.exit == 0 and not r.timed_out, r.stderr
    assert r.wall_s <= lim.wall_s + 0.5, r.wall_s  # the reported time includes the cleanup


def test_a_server_that_answers_with_an_error_is_retired():
    sandbox.shutdown()
    s = server._acquire()
    server._release(s)
    resp = server.run_request({"cases": [{}], "limits": {}}, 30)  # malformed: the server answers with an error
    assert "error" in resp
    assert s.proc.poll() is not None  # killed, not back in the pool
    assert all(s not in pool for pool in server._idle.values())


SLEEPER = """
import os, time
for _ in range(5):
    if os.fork() == 0:
        os.setsid()
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""


def test_giving_up_kills_the_server_and_every_case_process():
    sandbox.shutdown()
    s = server._acquire()
    server._release(s)
    req = {"code": SLEEPER, "mode": "script", "fn_name": None, "cases": [{"stdin": ""}],
           "limits": {k: getattr(Limits(wall_s=30), k) for k in Limits.__dataclass_fields__}}  # fmt: skip
    start = time.monotonic()
    with pytest.raises(sandbox.SandboxUnavailable, match="in time"):
        server.run_request(req, 1.5)
    assert time.monotonic() - start < 15
    assert _uids(s.uid) == []  # nothing of the case is left when the call returns
    assert s.cgroup is None or not any(os.path.isdir(d) for d in s.cgroup["dirs"].values())


def test_a_scorer_that_dies_takes_its_cases_with_it():
    script = (
        "from gdpo_verl.rewards.sandbox import server, run_python, Limits\n"
        "s = server._acquire()\n"
        "print(s.uid, *(s.cgroup or {}).get('dirs', {}).values(), flush=True)\n"
        "server._release(s)\n"
        f"run_python({SLEEPER!r}, limits=Limits(wall_s=30))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        uid, *cgroup_dirs = child.stdout.readline().split()
        uid = int(uid)
        deadline = time.monotonic() + 20
        while not _uids(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _uids(uid), "the case did not start"
        time.sleep(0.5)
        child.kill()  # as a pool kills a worker past its timeout
        child.wait()
        gone = time.monotonic() + 5
        while _uids(uid) and time.monotonic() < gone:
            time.sleep(0.05)
        assert _uids(uid) == []
        assert not any(os.path.isdir(d) for d in cgroup_dirs)  # the server removed its cgroup on the way out
    finally:
        child.kill()
        child.wait()


MQ_PLANT = r"""
import sys
sys.modules['audit']._BLOCKED_EVENTS = ('-',)  # the audit hook is no boundary: ctypes after emptying its list
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
q = libc.mq_open(b'/gdpo_left', os.O_CREAT | os.O_RDWR, 0o666, None)
msg = b'SECRET0123456789ab'
print('planted', q >= 0 and libc.mq_send(q, msg, len(msg), 0) == 0)
"""
MQ_READ = r"""
import sys
sys.modules['audit']._BLOCKED_EVENTS = ('-',)
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
q = libc.mq_open(b'/gdpo_left', os.O_RDWR, 0, None)
buf = ctypes.create_string_buffer(8192)
n = libc.mq_receive(q, buf, 8192, None) if q >= 0 else -1
print('got', buf.raw[: max(n, 0)])
"""


def test_a_posix_message_queue_does_not_reach_the_next_response():
    (a,) = run_cases(MQ_PLANT, "script", [{"stdin": ""}], Limits())
    (b,) = run_cases(MQ_READ, "script", [{"stdin": ""}], Limits())  # the same server, the next request
    assert "planted True" in a.stdout, a.stdout + a.stderr
    assert b.stdout.strip() == "got b''", b.stdout + b.stderr
