"""The verl internals the CPU plugin touches or relies on. If verl changes under one of them, a test here names it."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("verl")
pytestmark = pytest.mark.verl

from gdpo_verl_plugins import cpu  # noqa: E402
from gdpo_verl_plugins.cpu import guard as cpu_guard  # noqa: E402
from gdpo_verl_plugins.cpu import patches as cpu_patches  # noqa: E402


@pytest.mark.parametrize("hook", cpu_guard.cpu_hooks(), ids=lambda h: h.module)
def test_installed_verl_has_every_shape_cpu_mode_needs(hook):
    assert hook.missing(importlib.import_module(hook.module)) == []


@pytest.mark.parametrize("name", sorted(cpu_patches.PATCHES))
def test_patched_attribute_still_exists(name):
    module_name, attr = cpu_patches.PATCHES[name]
    assert hasattr(importlib.import_module(module_name), attr), f"{module_name}.{attr} is gone ({name})"


def test_process_group_backend_is_still_built_from_device_and_nccl_names():
    from verl.utils import distributed

    fn = distributed.initialize_global_process_group_ray
    original = getattr(fn, "__wrapped__", fn)
    assert list(inspect.signature(original).parameters) == ["timeout_second", "backend"]
    assert 'f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"' in inspect.getsource(original)
    assert hasattr(distributed, "get_device_name") and hasattr(distributed, "get_nccl_backend")


def test_gloo_backend_wrapper_dedupes(monkeypatch):
    from types import SimpleNamespace

    seen = {}
    fake = SimpleNamespace(
        initialize_global_process_group_ray=lambda timeout_second=None, backend=None: seen.update(b=backend),
        get_device_name=lambda: "cpu",
        get_nccl_backend=lambda: "gloo",
    )
    cpu_patches.patch_gloo_backend(fake)
    fake.initialize_global_process_group_ray()
    assert seen["b"] == "cpu:gloo"
    fake.initialize_global_process_group_ray(backend="cpu:gloo")
    assert seen["b"] == "cpu:gloo"


def test_rollout_class_lookup_still_reads_the_private_registry():
    from verl.workers.rollout import base

    assert isinstance(base._ROLLOUT_REGISTRY, dict)
    assert ("vllm", "async") in base._ROLLOUT_REGISTRY
    assert "_ROLLOUT_REGISTRY[(rollout_name, mode)]" in inspect.getsource(base.get_rollout_class)
    assert list(inspect.signature(base.get_rollout_class).parameters) == ["rollout_name", "mode"]


def test_replica_registry_signature():
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    assert list(inspect.signature(RolloutReplicaRegistry.register).parameters) == ["name", "loader"]


def test_replay_buffer_poll_interval_parameter():
    from verl.trainer.ppo.v1 import replay_buffer

    init = replay_buffer.ReplayBuffer.__init__
    original = getattr(init, "__wrapped__", init)
    assert inspect.signature(original).parameters["poll_interval"].default == 2.0
    assert "time.sleep(self.poll_interval)" in inspect.getsource(replay_buffer.ReplayBuffer._wait_for_next_poll)
    assert "__init__" not in vars(replay_buffer.ReplayBufferAsync)  # inherits the (patched) constructor


def test_platform_implements_every_abstract_method():
    from gdpo_verl_plugins.cpu.platform import make_platform_class
    from verl.plugin.platform import PlatformBase

    platform = make_platform_class(PlatformBase)()  # raises TypeError if verl added an abstract method
    assert platform.device_name == "cpu" and platform.communication_backend_name() == "gloo"
    assert platform.ray_resource_name() == "GPU" and platform.ray_resource_options(1) == {"num_gpus": 1}


def test_engine_registry_still_honours_the_device_override():
    from verl.workers.engine import base

    assert 'os.getenv("VERL_ENGINE_DEVICE")' in inspect.getsource(base.EngineRegistry.get_engine_cls)


def test_rollout_pieces_implement_verl_interfaces():
    from gdpo_verl_plugins.cpu.rollout import HFReplica, HFServerAdapter

    assert not inspect.isabstract(HFReplica), HFReplica.__abstractmethods__
    assert not inspect.isabstract(HFServerAdapter), HFServerAdapter.__abstractmethods__


def test_server_has_every_method_verl_calls_on_rollout_servers():
    """RolloutReplica and LLMServerClient call ``server.<method>.remote(...)``; HFServer must answer each one."""
    from gdpo_verl_plugins.cpu.rollout import HFReplica, HFServer
    from verl.workers.rollout import llm_server, replica

    called = set()
    for src in (inspect.getsource(replica.RolloutReplica), inspect.getsource(llm_server.LLMServerClient)):
        called |= set(re.findall(r"server\.(\w+)\.remote", src))
    assert {"generate", "wake_up", "sleep"} <= called
    missing = [m for m in called if not hasattr(HFServer, m) and not hasattr(HFReplica, m)]
    assert not missing, missing


def test_worker_weight_sync_call_shape():
    """engine_workers hands the rollout full named tensors through ``rollout.update_weights(...)``."""
    from verl.workers import engine_workers

    src = inspect.getsource(engine_workers.ActorRolloutRefWorker.update_weights)
    assert "await self.rollout.update_weights(" in src and "get_per_tensor_param(" in src


def test_a_fresh_verl_process_picks_the_cpu_platform_and_rollout():
    code = (
        "import verl\n"
        "from verl.plugin.platform import get_platform\n"
        "from verl.workers.rollout.base import get_rollout_class\n"
        "from verl.workers.rollout.replica import get_rollout_replica_class\n"
        "import verl.utils.distributed as d\n"
        "print(get_platform().device_name, get_rollout_class('hf_cpu').__name__,"
        " get_rollout_replica_class('hf_cpu').__name__, d.initialize_global_process_group_ray.__gdpo_verl_patched__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE")}
    env[cpu.ENV] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["cpu", "HFServerAdapter", "HFReplica", "True"]


@pytest.mark.parametrize("switch", ["0", None], ids=["off", "unset"])
def test_cpu_mode_off_leaves_verl_alone(switch):
    """Unset means off, even on this accelerator-less host: CPU mode never switches on by itself."""
    code = (
        "import os, verl\n"
        "from verl.workers.rollout.base import _ROLLOUT_REGISTRY\n"
        "import verl.utils.distributed as d\n"
        "print(('hf_cpu', 'async') in _ROLLOUT_REGISTRY, hasattr(d.initialize_global_process_group_ray,"
        " '__gdpo_verl_patched__'), os.environ.get('VERL_ENGINE_DEVICE'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE")}
    env.pop(cpu.ENV, None)
    if switch is not None:
        env[cpu.ENV] = switch
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False", "None"]
