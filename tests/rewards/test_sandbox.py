"""Hostile corpus against the sandbox. Every program is finite by construction (bounded loops, capped forks and
allocations), so a broken sandbox makes a test fail, not the machine hang; pytest-timeout bounds each test too."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from gdpo_verl.rewards.sandbox import Limits, isolation_mode, run_python

pytestmark = pytest.mark.timeout(90)


def test_runs_code_with_stdin_and_scrubbed_env(monkeypatch):
    monkeypatch.setenv("GDPO_TEST_SECRET", "s3cr3t-value")
    code = "import os, sys\nprint(sys.stdin.read().upper())\nprint(sorted(os.environ))\nprint(os.getcwd())"
    res = run_python(code, stdin="hello")
    assert res.ok, res.stderr
    assert res.stdout.startswith("HELLO")
    assert "GDPO_TEST_SECRET" not in res.stdout and "s3cr3t" not in res.stdout
    # ran in its own work directory: its own /tmp with namespaces, a per-case directory in the weak fallback
    assert re.search(r"(^/tmp|gdpo_sbx_\w+/c\d+)\n", res.stdout, re.M), res.stdout


def test_reading_parent_environment_fails(monkeypatch):
    monkeypatch.setenv("GDPO_TEST_SECRET", "s3cr3t-value")
    code = f"""
import glob
found = []
for p in glob.glob('/proc/*/environ') + ['/proc/{os.getpid()}/environ', '/proc/self/environ']:
    try:
        data = open(p, 'rb').read()
    except OSError:
        continue
    if b's3cr3t' in data:
        found.append(p)
print('FOUND', found)
"""
    res = run_python(code)
    assert "FOUND []" in res.stdout, res.stdout + res.stderr


def test_infinite_loop_is_stopped_by_wall_time():
    code = "import time\nt = time.time()\nwhile time.time() - t < 60:\n    time.sleep(0.01)\nprint('survived')"
    start = time.monotonic()
    res = run_python(code, limits=Limits(wall_s=1.5))
    assert res.timed_out and "survived" not in res.stdout
    assert time.monotonic() - start < 15


def test_cpu_loop_is_stopped_by_cpu_limit():
    code = "import time\nt = time.time()\nx = 0\nwhile time.time() - t < 60:\n    x += 1\nprint('survived')"
    res = run_python(code, limits=Limits(wall_s=20, cpu_s=1))
    assert not res.ok and "survived" not in res.stdout and not res.timed_out


def test_fork_bomb_hits_the_process_limit():
    # Capped at 200 forks in all and every child exits after 2 s, so it stays finite even without RLIMIT_NPROC.
    code = """
import os, time
made, failed = 0, 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    made += 1
print('MADE', made, 'FAILED', failed, flush=True)
"""
    res = run_python(code, limits=Limits(wall_s=10, nproc=8))
    assert "MADE" in res.stdout, res.stderr
    made = int(res.stdout.split()[1])
    assert made <= 8, res.stdout
    assert "FAILED 0" not in res.stdout


@pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs root + unshare")
def test_processes_left_behind_are_killed():
    code = """
import os, time
print(os.getuid(), flush=True)
if os.fork() == 0:
    os.setsid()  # leaves the process group; only the pid namespace still holds it
    t = time.time()
    while time.time() - t < 30:
        time.sleep(0.1)
    os._exit(0)
"""
    res = run_python(code, limits=Limits(wall_s=5))
    uid = int(res.stdout.split()[0])
    time.sleep(0.5)
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        if str(uid) in uids:
            leftovers.append((pid, status.splitlines()[:8], Path(f"/proc/{pid}/cmdline").read_bytes()[:200]))
    assert not leftovers, (uid, leftovers)


def test_memory_bomb_fails_within_the_memory_limit():
    code = """
blocks = []
try:
    for _ in range(64):  # at most 4 GiB, finite even without RLIMIT_AS
        blocks.append(bytearray(64 << 20))
    print('ALLOCATED ALL')
except MemoryError:
    print('MEMORYERROR at', len(blocks) * 64, 'MiB')
"""
    res = run_python(code, limits=Limits(memory_mb=512))
    assert "ALLOCATED ALL" not in res.stdout
    assert "MEMORYERROR" in res.stdout, res.stderr
    assert int(res.stdout.split()[2]) < 512


def test_huge_output_is_cut():
    code = "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * (1 << 20))\n"  # 50 MiB at most
    res = run_python(code, limits=Limits(output_bytes=1 << 20))
    assert res.output_truncated and not res.ok
    assert len(res.stdout) <= 1 << 20


def test_big_file_is_stopped_by_file_size_limit():
    code = "f = open('big.bin', 'wb')\nfor _ in range(64):\n    f.write(b'x' * (1 << 20))\nf.close()\nprint('WROTE')"
    res = run_python(code, limits=Limits(file_mb=4))
    assert "WROTE" not in res.stdout and not res.ok


def test_writing_outside_the_work_directory_fails(tmp_path):
    tmp_path.chmod(0o777)  # even a world-writable directory outside the sandbox must stay untouched
    tag = uuid.uuid4().hex
    targets = [tmp_path / "escape.txt", Path("/tmp") / f"gdpo_escape_{tag}", Path.cwd() / f"gdpo_escape_{tag}.txt"]
    code = "import os\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('x')\n    print('WROTE', {str(t)!r})\nexcept OSError as e:\n"
        f"    print('DENIED', type(e).__name__)\n"
        for t in targets
    )
    code += "try:\n    os.system('echo x > /tmp/gdpo_escape_shell')\nexcept OSError:\n    print('DENIED shell')\n"
    code += "open('inside.txt', 'w').write('ok')\nprint('INSIDE OK')\n"
    try:
        res = run_python(code)
        assert "INSIDE OK" in res.stdout, res.stderr
        # with namespaces /tmp is the case's own tmpfs (its work directory): writing there is allowed, and the
        # host's /tmp stays untouched
        wrote = {line.split(" ", 1)[1] for line in res.stdout.splitlines() if line.startswith("WROTE")}
        assert wrote <= ({str(targets[1])} if isolation_mode() == "namespaces" else set()), res.stdout
        for t in [*targets, Path("/tmp/gdpo_escape_shell")]:
            assert not t.exists()
    finally:
        for t in [*targets, Path("/tmp/gdpo_escape_shell")]:
            t.unlink(missing_ok=True)


def test_network_is_unreachable():
    # The only target is a listener this test starts on 127.0.0.1.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    accepted: list = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    code = f"""
import socket
try:
    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)
    s.sendall(b'hi')
    print('CONNECTED')
except OSError as e:
    print('BLOCKED', type(e).__name__)
"""
    try:
        res = run_python(code)
        assert "BLOCKED" in res.stdout or "PermissionError" in res.stderr, res.stdout + res.stderr
        assert "CONNECTED" not in res.stdout
        t.join(timeout=6)
        assert not accepted
    finally:
        server.close()
        for conn, _ in accepted:
            conn.close()


@pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs root + unshare")
def test_network_namespace_even_without_the_audit_hook():
    # Independent of the audit hook: the sandbox's network namespace has only the loopback interface.
    res = run_python("print(open('/proc/net/dev').read())")
    names = [ln.split(":")[0].strip() for ln in res.stdout.splitlines()[2:] if ":" in ln]
    assert names == ["lo"], res.stdout


def test_runs_as_unprivileged_user_when_root():
    res = run_python("import os\nprint(os.getuid(), os.geteuid())")
    uid, euid = map(int, res.stdout.split())
    if isolation_mode() == "namespaces":
        assert uid != 0 and euid != 0
