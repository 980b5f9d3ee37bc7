"""CPU plugin switch, version guard and platform stand-ins (no verl import needed)."""

from __future__ import annotations

import logging

import pytest
import torch
from gdpo_verl_plugins import cpu, cpu_patches, cpu_platform, post_import


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(cpu, "accelerator_present", lambda: False)


@pytest.mark.parametrize(
    ("env", "accel", "expected"),
    [
        ("1", True, True),  # forced on even next to a GPU
        ("0", False, False),  # forced off on a CPU-only machine
        ("", False, True),  # auto: no accelerator -> on
        ("", True, False),  # auto: accelerator -> never touch the run
    ],
)
def test_active_env_and_auto(monkeypatch, env, accel, expected):
    monkeypatch.setenv(cpu.ENV, env)
    monkeypatch.setattr(cpu, "accelerator_present", lambda: accel)
    assert cpu.active() is expected


def test_install_inactive_registers_nothing(monkeypatch):
    monkeypatch.setenv(cpu.ENV, "0")
    before = {k: list(v) for k, v in post_import._callbacks.items()}
    assert cpu.install() is False
    assert {k: list(v) for k, v in post_import._callbacks.items()} == before


def test_other_verl_version_warns_once_and_patches_nothing(monkeypatch, caplog, no_accelerator):
    monkeypatch.delenv(cpu.ENV, raising=False)
    monkeypatch.setattr(cpu, "verl_version", lambda: "0.10.0")
    monkeypatch.setattr(cpu, "_warned", False)
    before = {k: list(v) for k, v in post_import._callbacks.items()}
    with caplog.at_level(logging.WARNING, logger="gdpo_verl"):
        assert cpu.install() is False
        assert cpu.install() is False
    warnings = [r for r in caplog.records if "CPU training not enabled" in r.getMessage()]
    assert len(warnings) == 1 and cpu.SUPPORTED_VERL in warnings[0].getMessage()
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
