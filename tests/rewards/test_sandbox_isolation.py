"""Per-sandbox resources and the kernel boundary: cgroup limits over the whole process tree, tmpfs work directory,
fresh namespaces, no capabilities, no-new-privs, seccomp, read-only binds, nothing left between cases. Programs are
finite by construction (bounded forks, allocations and sleeps); pytest-timeout bounds every test."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import time

import pytest

from gdpo_verl.rewards.sandbox import Limits, describe, isolation_mode, run_cases, run_python

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(isolation_mode() != "namespaces", reason="needs root + unshare"),
]


def _needs_cgroup():
    if describe()["cgroup"] is None:
        pytest.skip("no cgroup can be made here (the sandbox warned and uses rlimits only)")


MEMORY_TREE = """
import os, time
pids = []
for i in range({n}):
    pid = os.fork()
    if pid == 0:
        block = b'x' * (150 << 20)  # touched, so it is really charged
        time.sleep(1.0)
        os._exit(0)
    pids.append(pid)
ok = sum(os.waitpid(p, 0)[1] == 0 for p in pids)
print('SURVIVED', ok, flush=True)
"""


def test_memory_limit_holds_for_the_whole_process_tree():
    _needs_cgroup()
    lim = Limits(memory_mb=400, wall_s=20, nproc=16)
    control = run_python(MEMORY_TREE.format(n=2), limits=lim)  # 300 MiB in all: fits
    assert "SURVIVED 2" in control.stdout, control.stdout + control.stderr
    res = run_python(MEMORY_TREE.format(n=5), limits=lim)  # 750 MiB in all, each under its own RLIMIT_AS
    assert "SURVIVED 5" not in res.stdout, res.stdout


def test_processes_join_a_limited_cgroup():
    _needs_cgroup()
    res = run_python("print(open('/proc/self/cgroup').read())", limits=Limits(memory_mb=300, nproc=7))
    seen = {}
    for line in res.stdout.split():  # /sys is not in the sandbox's root: read the limits from here
        _, ctrl, path = line.strip().split(":", 2)
        if ctrl in ("pids", "memory", "cpu"):
            assert path.rsplit("/", 1)[-1].startswith("gdpo_sbx_"), line
            f = {"pids": "pids.max", "memory": "memory.limit_in_bytes", "cpu": "cpu.cfs_quota_us"}[ctrl]
            seen[ctrl] = open(f"/sys/fs/cgroup/{ctrl}{path}/{f}").read().strip()
    assert seen["pids"] == "7" and seen["memory"] == str(300 << 20), (seen, res.stdout + res.stderr)
    if describe()["cpu_controller"]:
        assert seen["cpu"] == "100000"  # one core per sandbox


def test_work_directory_is_a_size_limited_tmpfs():
    code = """
import os
st = os.statvfs('.')
print('SIZE_MB', st.f_blocks * st.f_frsize >> 20)
try:
    with open('big', 'wb') as f:
        for _ in range(64):
            f.write(b'x' * (1 << 20))
    print('WROTE 64')
except OSError as e:
    print('FULL', e.errno)
"""
    res = run_python(code, limits=Limits(file_mb=256, tmpfs_mb=16))
    assert "SIZE_MB 16" in res.stdout and "WROTE" not in res.stdout, res.stdout + res.stderr
    assert f"FULL {errno.ENOSPC}" in res.stdout


def test_fresh_namespaces():
    code = "import os\nprint(' '.join(os.readlink(f'/proc/self/ns/{n}') for n in ('ipc','uts','net','pid','mnt')))"
    res = run_python(code)
    mine = [os.readlink(f"/proc/self/ns/{n}") for n in ("ipc", "uts", "net", "pid", "mnt")]
    theirs = res.stdout.split()
    assert len(theirs) == 5 and all(a != b for a, b in zip(mine, theirs, strict=True)), res.stdout


def test_no_privileges_left():
    code = "print(open('/proc/self/status').read())"
    status = dict(ln.split(":", 1) for ln in run_python(code).stdout.splitlines() if ":" in ln)
    status = {k: v.strip() for k, v in status.items()}
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, cap
    assert "0" not in status["Uid"].split() and "0" not in status["Gid"].split()


def _syscall_results(weak: bool = False) -> dict:
    """In a forked child of this test: load the sandbox's filter, try the denied calls directly (no audit hook)."""
    import pyseccomp

    from gdpo_verl.rewards.sandbox import kernel

    filt, why = kernel.build_filter(weak=weak)
    assert filt is not None, why
    arch = pyseccomp.system_arch()
    nr = {n: pyseccomp.resolve_syscall(arch, n) for n in ("unshare", "mount", "ptrace", "shmget", "keyctl", "bpf",
                                                          "clone", "execve", "setns", "getpid", "socket",
                                                          "mknodat", "setsid")}  # fmt: skip
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            kernel.no_new_privs()
            kernel.load_filter(filt)
            libc = ctypes.CDLL(None, use_errno=True)

            def call(name, *args):
                ctypes.set_errno(0)
                ret = libc.syscall(nr[name], *[ctypes.c_long(a) for a in args])
                if ret == 0 and name == "clone":
                    os._exit(0)  # a new process: must not happen
                return ctypes.get_errno() if ret == -1 else 0

            out = {
                "unshare_user": call("unshare", 0x10000000),
                "unshare_mnt": call("unshare", 0x00020000),
                "mount": call("mount", 0, 0, 0, 0, 0),
                "ptrace": call("ptrace", 0, 0, 0, 0),
                "shmget": call("shmget", 0, 4096, 0o1600),
                "keyctl": call("keyctl", 0, 0, 0, 0),
                "bpf": call("bpf", 0, 0, 0),
                "setns": call("setns", 0, 0),
                "clone_newuser": call("clone", 0x10000000 | 17, 0, 0, 0, 0),
                "execve": call("execve", 0, 0, 0),
                "getpid": call("getpid"),
                "socket_inet": call("socket", 2, 1, 0),
                "socket_inet6": call("socket", 10, 1, 0),
                "socket_unix": min(call("socket", 1, 1, 0), 0),
                "mknodat": call(
                    "mknodat", -100, ctypes.cast(ctypes.c_char_p(b"/tmp/gdpo_nod"), ctypes.c_void_p).value, 0o10600, 0
                ),  # fmt: skip
            }
            out["setsid"] = call("setsid")
            child = os.fork()  # plain fork still works
            if child == 0:
                os._exit(0)
            out["fork"] = os.waitpid(child, 0)[1]
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 30
    while not os.waitpid(pid, os.WNOHANG)[0]:
        assert time.monotonic() < deadline, "filtered child hung"
        time.sleep(0.01)
    data = os.read(r, 65536)
    os.close(r)
    return json.loads(data)


def test_seccomp_filter_denies_kernel_attack_surface():
    out = _syscall_results()
    assert out.pop("getpid") == 0 and out.pop("fork") == 0 and out.pop("socket_unix") == 0
    assert out.pop("setsid") == 0  # allowed with namespaces: the pid namespace and the cgroup hold every process
    assert out == {k: errno.EPERM for k in out}, out


def test_weak_filter_keeps_processes_in_the_group():
    out = _syscall_results(weak=True)
    assert out["setsid"] == errno.EPERM and out["socket_inet"] == errno.EPERM and out["execve"] == errno.EPERM


def test_python_paths_are_read_only_and_programs_cannot_start():
    # os.mknod and _posixsubprocess.fork_exec raise no audit event: only the mounts and seccomp stop them.
    code = """
import os, sys, errno
for p in sorted({p for p in sys.path if os.path.isdir(p)} | {sys.prefix, sys.base_prefix}):
    try:
        os.mknod(os.path.join(p, 'gdpo_probe'))
        print('CREATED', p)
    except OSError as e:
        print('DENIED', errno.errorcode[e.errno])
import _posixsubprocess
r, w = os.pipe()
pid = _posixsubprocess.fork_exec([b'/bin/sh', b'-c', b'echo hi'], [b'/bin/sh'], True, (w,), None, None, -1, -1, -1,
                                 -1, -1, -1, r, w, True, False, 0, None, None, None, -1, None, False)
os.close(w)
print('EXEC_RESULT', os.read(r, 200) or b'started')
"""
    res = run_python(code)
    assert "DENIED" in res.stdout and "CREATED" not in res.stdout, res.stdout + res.stderr
    assert "EXEC_RESULT b'OSError:" in res.stdout and "started" not in res.stdout, res.stdout + res.stderr


def test_nothing_survives_from_one_case_to_the_next():
    first = """
import os, time
for d in ('/dev/shm', '/tmp'):  # dir_fd: the audit hook sees only 'left', a relative name
    fd = os.open(d, os.O_RDONLY)
    os.close(os.open('left', os.O_CREAT | os.O_WRONLY, dir_fd=fd))
if os.fork() == 0:
    os.setsid()
    time.sleep(30)
    os._exit(0)
print('PLANTED', flush=True)
"""
    second = """
import os
uid = os.getuid()
mine = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        try:
            if os.stat('/proc/' + p).st_uid == uid:
                mine.append(p)
        except OSError:
            pass
# what the first case planted (the sandbox's /tmp may hold read-only binds of Python's own paths, e.g. a venv there)
print('PROCS', mine, 'SHM', os.listdir('/dev/shm'), 'TMP', [n for n in os.listdir('/tmp') if n == 'left'])
"""
    a, b = run_cases(first, "script", [{"stdin": ""}]), run_cases(second, "script", [{"stdin": ""}])
    assert "PLANTED" in a[0].stdout, a[0].stderr
    assert "PROCS [] SHM [] TMP []" in b[0].stdout, b[0].stdout + b[0].stderr


def test_stale_cgroups_of_killed_processes_are_swept():
    _needs_cgroup()
    import subprocess

    from gdpo_verl.rewards.sandbox import cgroups

    pid = subprocess.Popen(["true"])  # once reaped, its pid names no process
    pid.wait()
    stale, _ = cgroups.create(f"{cgroups.PREFIX}{cgroups.owner_tag()}_{pid.pid}_0")
    foreign, _ = cgroups.create(f"{cgroups.PREFIX}1_{pid.pid}_0")  # another pid namespace's: never touched
    try:
        fresh, _ = cgroups.create(f"{cgroups.PREFIX}{cgroups.owner_tag()}_{os.getpid()}_999")
        cgroups.remove(fresh)
        assert not any(os.path.isdir(d) for d in stale["dirs"].values())
        assert all(os.path.isdir(d) for d in foreign["dirs"].values())
    finally:
        cgroups.remove(stale)
        cgroups.remove(foreign)


def _own_cgroups() -> set[str]:
    from gdpo_verl.rewards.sandbox import cgroups

    mine = f"{cgroups.PREFIX}{cgroups.owner_tag()}_{os.getpid()}_"
    found = set()
    for top in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"):
        for dirpath, dirs, _ in os.walk(top):
            found |= {os.path.join(dirpath, d) for d in dirs if d.startswith(mine)}
            if dirpath.count("/") > 8:
                dirs[:] = []
    return found


@pytest.mark.parametrize("failing", ["tempfile.TemporaryFile", "subprocess.Popen"])
def test_a_server_that_cannot_start_leaves_no_cgroup(monkeypatch, failing):
    _needs_cgroup()
    from gdpo_verl.rewards.sandbox import server

    server.shutdown()  # idle servers keep their cgroups: compare against a clean slate
    before = _own_cgroups()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    module, name = failing.split(".")
    monkeypatch.setattr(getattr(server, module), name, fail)
    with pytest.raises((OSError, server.SandboxUnavailable)):
        server.SandboxServer()
    assert _own_cgroups() == before
