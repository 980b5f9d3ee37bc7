"""``gdpo-verl doctor --ray-address``: the per-node verdicts (from made-up node facts), what the config decides, and
a real local three-node cluster where one node runs without the plugin (VERL_USE_EXTERNAL_PLUGINS=none) and another
without the sandbox's namespaces (GDPO_SANDBOX_NO_NAMESPACES=1) but with an importable ``flash_attn`` stand-in (the
one module ``--backend fsdp2`` imports, absent from a CPU install): each node's own checks decide its line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from gdpo_verl import cluster_doctor, node_probe

DRIVER = {"gdpo-verl": "0.1.0", "verl": "0.9.1", "ray": "2.60.0", "torch": "2.13.0"}
OURS_GDPO = "gdpo_verl_plugins.adv_estimator.compute_gdpo_outcome_advantage"
OURS_MANAGER = "gdpo_verl_plugins.reward_manager.GDPOMultiRewardManager"
DOCTOR_OK = (
    "verl 0.9.1\nentry point verl.plugins:gdpo_verl -> gdpo_verl_plugins.entry\n"
    f"algorithm.adv_estimator=gdpo -> {OURS_GDPO}\nreward.reward_manager.name=gdpo_multi -> {OURS_MANAGER}\n"
    "OK: verl runs gdpo_verl for adv_estimator=gdpo\n"
)
STRONG = {"isolation": "namespaces", "cgroup": 2, "seccomp": True, "unprivileged_uid": True}
WEAK = {"isolation": "rlimits", "cgroup": None, "seccomp": True, "unprivileged_uid": False}


def _facts(**over) -> dict:
    facts = {
        "host": "n1",
        "python": "/usr/bin/python3",
        "versions": dict(DRIVER),
        "doctor": {"rc": 0, "stdout": DOCTOR_OK, "stderr": ""},
        "sandbox": dict(STRONG),
    }
    facts.update(over)
    return facts


def _problems(facts, sandbox=True, allow_weak=False, usual=None):
    return cluster_doctor.node_problems(facts, DRIVER, sandbox, allow_weak, usual)


def test_a_node_like_the_driver_has_no_problem():
    assert _problems(_facts()) == []
    line = cluster_doctor.node_line(0, {"NodeID": "ab" * 28, "NodeManagerAddress": "10.0.0.1"}, _facts(), [], True)
    assert line == (
        "node 0 (head) abababab 10.0.0.1 n1: gdpo-verl 0.1.0, verl 0.9.1, gdpo -> gdpo_verl, "
        "gdpo_multi -> gdpo_verl, sandbox namespaces, cgroup v2, seccomp: OK"
    )


def test_versions_must_match_the_driver():
    facts = _facts(versions={**DRIVER, "gdpo-verl": "0.0.9"})
    assert _problems(facts) == ["gdpo-verl 0.0.9 here, 0.1.0 on the driver"]
    assert _problems(_facts(versions={**DRIVER, "verl": "0.9.0"})) == ["verl 0.9.0 here, 0.9.1 on the driver"]
    missing = _problems(_facts(versions={**DRIVER, "gdpo-verl": None}))
    assert len(missing) == 1 and "not installed" in missing[0] and "0.1.0" in missing[0]


def test_the_doctors_own_problems_are_the_nodes():
    stdout = DOCTOR_OK.replace(OURS_GDPO, "verl.trainer.ppo.core_algos.compute_gdpo_outcome_advantage")
    stdout += "PROBLEM: adv_estimator=gdpo would run verl's built-in, not gdpo_verl\n"
    assert _problems(_facts(doctor={"rc": 1, "stdout": stdout, "stderr": ""})) == [
        "adv_estimator=gdpo would run verl's built-in, not gdpo_verl"
    ]
    crashed = _problems(_facts(doctor={"rc": 1, "stdout": "", "stderr": "Traceback\nImportError: no verl"}))
    assert crashed == ["gdpo-verl doctor failed there (1): ImportError: no verl"]


def test_a_resolution_to_something_else_is_a_problem_even_when_the_doctor_says_nothing():
    stdout = DOCTOR_OK.replace(OURS_MANAGER, "somewhere.Else")
    assert _problems(_facts(doctor={"rc": 0, "stdout": stdout, "stderr": ""})) == [
        "reward.reward_manager.name=gdpo_multi resolves to somewhere.Else, not gdpo_verl"
    ]


def test_sandbox_checked_only_when_the_run_scores_code():
    weak = _facts(sandbox=dict(WEAK))
    assert _problems(weak, sandbox=False) == []
    only = _problems(weak, sandbox=True)
    assert len(only) == 1 and "weak fallback" in only[0] and "allow_weak_sandbox" in only[0]
    assert _problems(weak, sandbox=True, allow_weak=True) == []  # the user accepted the weak sandbox
    differs = _problems(weak, allow_weak=True, usual=cluster_doctor.sandbox_text(STRONG))
    assert differs == ["code sandbox rlimits, no cgroup, seccomp, other nodes: namespaces, cgroup v2, seccomp"]
    broken = _problems(_facts(sandbox=None, sandbox_error="SandboxUnavailable: exited (1)"))
    assert broken == ["the code sandbox cannot run there: SandboxUnavailable: exited (1)"]


def test_a_failed_task_is_that_nodes_finding():
    assert _problems({"error": "NodeDiedError: gone"}) == ["the check could not run there: NodeDiedError: gone"]


def test_code_rewards_in_the_config_turn_the_sandbox_check_on():
    pytest.importorskip("verl")
    manager = "reward.reward_manager.name=gdpo_multi"
    assert cluster_doctor.code_sandbox_need([manager, "+reward.gdpo_multi.suite=code"]) == (True, False)
    weak_ok = [manager, "+reward.gdpo_multi.suite=code", "+reward.gdpo_multi.allow_weak_sandbox=true"]
    assert cluster_doctor.code_sandbox_need(weak_ok) == (True, True)
    assert cluster_doctor.code_sandbox_need([manager, "+reward.gdpo_multi.suite=math"]) == (False, False)
    assert cluster_doctor.code_sandbox_need(["algorithm.adv_estimator=gdpo"]) == (False, False)
    with pytest.raises(ValueError):
        cluster_doctor.code_sandbox_need([manager, "+reward.gdpo_multi.suite=nope"])


def test_node_probe_runs_with_the_standard_library_only():
    source = open(node_probe.__file__).read()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    assert imported <= set(sys.stdlib_module_names), imported  # it travels to nodes that may lack gdpo-verl


def test_overrides_without_an_address_are_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "gdpo_verl.cli", "doctor", "--code-rewards"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "--ray-address" in proc.stderr


@pytest.mark.e2e
@pytest.mark.verl
def test_doctor_on_a_local_cluster_names_the_nodes_that_differ(tmp_path):
    pytest.importorskip("verl")
    pytest.importorskip("ray")
    from gdpo_verl.quickstart import cluster

    stand_in = tmp_path / "stand_in"
    (stand_in / "mbridge").mkdir(parents=True)  # a broken package on one node, shadowing the installed one
    (stand_in / "mbridge" / "__init__.py").write_text('raise ImportError("stand-in: mbridge is broken on this node")\n')
    other = {"GDPO_SANDBOX_NO_NAMESPACES": "1", "PYTHONPATH": str(stand_in)}
    node_env = [{}, {"VERL_USE_EXTERNAL_PLUGINS": "none"}, other]
    folder, fresh = cluster.ray_tmpdir(tmp_path)
    local = cluster.LocalCluster(3, folder, tmp_path / "ray_cluster.log", cpus_per_node=2, node_env=node_env)
    code = ["--", "reward.reward_manager.name=gdpo_multi", "+reward.gdpo_multi.suite=code"]
    try:
        with local:
            env = {**os.environ, **local.environment()}
            plain, with_code = (
                subprocess.run(
                    [sys.executable, "-m", "gdpo_verl.cli", "doctor", "--ray-address", local.address, *extra],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                for extra in (["--backend", "megatron"], code)
            )
            head, no_plugin, weak = local.node_ids
        assert local.alive_pids() == []
    finally:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)

    def line(proc, node_id):
        (found,) = [x for x in proc.stdout.splitlines() if f" {node_id[:8]} " in x]
        return found

    # --backend megatron, no code rewards: mbridge fails to import on the node with the broken stand-in only; the node
    # without the plugin differs for that.
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert line(plain, head).endswith(": OK")
    no_bridge = "megatron: `import mbridge` fails"
    assert no_bridge in line(plain, weak) and no_bridge not in line(plain, no_plugin)
    assert "gdpo -> verl.trainer.ppo.core_algos" in line(plain, no_plugin)
    assert "VERL_USE_EXTERNAL_PLUGINS='none' keeps verl from loading gdpo_verl" in line(plain, no_plugin)
    assert "PROBLEM: 2 of 3 nodes differ" in plain.stdout
    # With code rewards in the config: the node without namespaces has only the weak sandbox. Where this host gives
    # no namespaces at all (not root), every node has the weak one and each is flagged for it.
    from gdpo_verl.rewards.sandbox import isolation_mode

    assert with_code.returncode == 1, with_code.stdout + with_code.stderr
    assert "sandbox rlimits" in line(with_code, weak) and "weak fallback" in line(with_code, weak)
    if isolation_mode() == "namespaces":
        assert line(with_code, head).endswith(": OK") and "sandbox namespaces" in line(with_code, head)
        assert "code sandbox rlimits" in line(with_code, weak) and "other nodes: namespaces" in line(with_code, weak)
        assert "PROBLEM: 2 of 3 nodes differ" in with_code.stdout
    else:
        assert "weak fallback" in line(with_code, head)
