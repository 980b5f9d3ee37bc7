"""On a host without namespaces (no root or no ``unshare``) the code sandbox refuses to run unless the user allows
its weak fallback. These tests allow it there, as a user would with ``reward.gdpo_multi.allow_weak_sandbox=true``;
``test_sandbox_failclosed.py`` removes the opt-in to check the refusal, and tests that need the full sandbox skip."""

from __future__ import annotations

import os
import sys

import pytest

from gdpo_verl.rewards.sandbox import isolation_mode


@pytest.fixture(autouse=True)
def _weak_sandbox_opt_in_on_weak_hosts(monkeypatch):
    if isolation_mode() != "namespaces":
        monkeypatch.setenv("GDPO_SANDBOX_ALLOW_WEAK", "1")


sys.path.insert(0, os.path.dirname(__file__))  # code_group.py
