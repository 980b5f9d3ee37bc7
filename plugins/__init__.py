"""Hooks into verl internals (installed as ``gdpo_verl_plugins``). One concern per module, version-guarded."""
