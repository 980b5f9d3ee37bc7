"""CPU plugin switch, version guard and platform stand-ins (no verl import needed)."""

from __future__ import annotations

import pytest
import torch
from gdpo_verl_plugins import cpu, post_import
from gdpo_verl_plugins.cpu import patches as cpu_patches
from gdpo_verl_plugins.cpu import platform as cpu_platform


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setenv(cpu.ENV, "1")


@pytest.mark.parametrize(
    ("env", "expected"),
    [("1", True), ("true", True), ("0", False), ("", False), (None, False)],
)
def test_cpu_mode_is_opt_in_only(monkeypatch, env, expected):
    """A host without an accelerator (this one) is never switched to CPU mode unless GDPO_VERL_CPU asks for it."""
    if env is None:
        monkeypatch.delenv(cpu.ENV, raising=False)
    else:
        monkeypatch.setenv(cpu.ENV, env)
    assert not torch.cuda.is_available()
    assert cpu.active() is expected


def test_install_inactive_registers_nothing(monkeypatch):
    monkeypatch.setenv(cpu.ENV, "0")
    before = {k: list(v) for k, v in post_import._callbacks.items()}
    assert cpu.install() is False
    assert {k: list(v) for k, v in post_import._callbacks.items()} == before


def test_every_patch_has_an_apply_function():
    assert set(cpu_patches.PATCHES) == set(cpu_patches.APPLY)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("cpu:gloo,cpu:gloo", "cpu:gloo"),
        ("cpu:gloo,cuda:nccl", "cpu:gloo,cuda:nccl"),
        ("cpu:gloo", "cpu:gloo"),
        (None, None),
    ],
)
def test_dedupe_backend(given, expected):
    assert cpu_patches.dedupe_backend(given) == expected


def test_device_module_acts_on_the_cpu():
    dev = cpu_platform.DEVICE_MODULE
    assert torch.zeros(2).to(dev.current_device()).device.type == "cpu"
    assert dev.is_available() and dev.device_count() == 1
    free, total = dev.mem_get_info()
    assert 0 <= free <= total
    assert dev.memory_allocated() == 0 and dev.max_memory_reserved() == 0
    stream = dev.current_stream()
    stream.wait_stream(dev.Stream())
    stream.synchronize()
    with dev.stream(stream):
        pass
    state = dev.get_rng_state()
    dev.set_rng_state(state)
    dev.empty_cache()
    dev.synchronize()
