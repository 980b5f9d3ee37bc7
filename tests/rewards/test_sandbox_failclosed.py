"""Fail closed: weak isolation is refused unless allowed, and a sandbox that cannot run code stops the manager."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from gdpo_verl.rewards import code_rewards as c
from gdpo_verl.rewards import sandbox
from gdpo_verl.rewards.manager import MultiRewardScorer, parse_config
from gdpo_verl.rewards.sandbox import server

pytestmark = pytest.mark.timeout(180)
HONEST = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
GT = {"inputs": ["1 2\n"], "outputs": ["3\n"]}


@pytest.fixture
def weak_host(monkeypatch):
    """This host as if it had no namespaces (no root or no unshare)."""
    monkeypatch.setenv("GDPO_SANDBOX_NO_NAMESPACES", "1")
    monkeypatch.delenv("GDPO_SANDBOX_ALLOW_WEAK", raising=False)
    sandbox.isolation_mode.cache_clear()
    c._run_cached.cache_clear()
    yield
    sandbox.shutdown()
    sandbox.isolation_mode.cache_clear()
    c._run_cached.cache_clear()


def test_weak_sandbox_is_refused_without_opt_in(weak_host):
    with pytest.raises(sandbox.WeakSandboxError, match="allow_weak_sandbox=true"):
        sandbox.run_python("print(1)")
    with pytest.raises(sandbox.WeakSandboxError, match="allow_weak_sandbox"):
        MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0}))


def _python_hidden_from_other_users() -> bool:
    """Root drops to an unprivileged uid in the weak fallback too; a Python under a 0700 directory is then unusable."""
    parts = os.path.realpath(sys.base_prefix).split(os.sep)
    ancestors = [os.sep.join(parts[:i]) or "/" for i in range(2, len(parts) + 1)]
    return os.geteuid() == 0 and any(not os.stat(a).st_mode & stat.S_IXOTH for a in ancestors)


def test_weak_sandbox_runs_when_allowed_and_says_so(weak_host, caplog):
    caplog.set_level(logging.INFO, logger="gdpo_verl.rewards")
    cfg = parse_config({"suite": "code", "max_workers": 0, "allow_weak_sandbox": True})
    if _python_hidden_from_other_users():  # the self-test must stop the run, naming the cause
        with pytest.raises(RuntimeError, match="correct program did not pass.*(ModuleNotFound|Permission)"):
            MultiRewardScorer(cfg)
        return
    scorer = MultiRewardScorer(cfg)
    try:
        assert any("isolation=rlimits" in r.message and r.levelno == logging.WARNING for r in caplog.records)
        out = scorer.score_sync(
            {"data_source": "code", "solution_str": HONEST, "ground_truth": GT, "extra_info": {}, "num_tokens": 5}
        )
        assert out["pass_rate"] == 1.0
    finally:
        scorer.close()
        os.environ.pop("GDPO_SANDBOX_ALLOW_WEAK", None)


def test_unknown_manager_key_still_rejected():
    with pytest.raises(ValueError, match="allow_weak_sandbox"):  # the error lists the allowed keys
        parse_config({"suite": "code", "allow_weak_sandbox_typo": True})


def test_self_test_stops_a_sandbox_that_cannot_start(monkeypatch, tmp_path):
    broken = tmp_path / "launcher.py"
    broken.write_text("import sys\nsys.stderr.write('stdlib unreadable\\n')\nsys.exit(3)\n")
    sandbox.shutdown()
    monkeypatch.setattr(server, "LAUNCHER", broken)
    monkeypatch.setenv("GDPO_SANDBOX_ALLOW_WEAK", "1")
    c._run_cached.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="cannot run code.*stdlib unreadable"):
            MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0}))
    finally:
        sandbox.shutdown()
        c._run_cached.cache_clear()


def test_self_test_stops_a_sandbox_where_correct_code_fails(monkeypatch):
    def every_case_crashes(code, mode, cases, limits, fn_name, backend):
        return [sandbox.CaseResult(1, None, False, False, "", "ImportError", None) for _ in cases]

    monkeypatch.setattr(c, "execute", every_case_crashes)
    monkeypatch.setenv("GDPO_SANDBOX_ALLOW_WEAK", "1")
    c._run_cached.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="correct program did not pass"):
            c.self_test()
    finally:
        c._run_cached.cache_clear()


def test_self_test_passes_on_this_host():
    if sandbox.isolation_mode() != "namespaces" and (not sandbox.weak_allowed() or _python_hidden_from_other_users()):
        pytest.skip("weak host: covered by the opt-in test")
    c.self_test()


def _launcher_without_pyseccomp(tmp_path):
    wrapper = tmp_path / "launcher.py"
    wrapper.write_text(
        "import runpy, sys\nsys.modules['pyseccomp'] = None  # import pyseccomp -> ImportError\n"
        f"runpy.run_path({str(server.LAUNCHER)!r}, run_name='__main__')\n"
    )
    return wrapper


def test_missing_seccomp_is_refused_without_opt_in(monkeypatch, tmp_path):
    if sandbox.isolation_mode() != "namespaces":
        pytest.skip("weak host: scoring there needs the opt-in anyway")
    sandbox.shutdown()
    monkeypatch.setattr(server, "LAUNCHER", _launcher_without_pyseccomp(tmp_path))
    monkeypatch.delenv("GDPO_SANDBOX_ALLOW_WEAK", raising=False)
    c._run_cached.cache_clear()
    try:
        with pytest.raises(sandbox.WeakSandboxError, match="seccomp.*pyseccomp.*allow_weak_sandbox=true"):
            sandbox.run_python("print(1)")
        with pytest.raises(sandbox.WeakSandboxError, match="allow_weak_sandbox"):
            MultiRewardScorer(parse_config({"suite": "code", "max_workers": 0}))
        assert not any(server._idle.values())  # refused servers are not kept
        monkeypatch.setenv("GDPO_SANDBOX_ALLOW_WEAK", "1")  # the user's explicit opt-in
        assert sandbox.run_python("print(6 * 7)").stdout == "42\n"
        assert sandbox.describe()["seccomp"] is False
    finally:
        sandbox.shutdown()
        c._run_cached.cache_clear()
