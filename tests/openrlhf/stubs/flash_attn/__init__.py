"""Test-only stand-in for flash-attn (see ../README.md): importable names only; calling any of them raises."""

__version__ = "0.0.0+test-stub"
