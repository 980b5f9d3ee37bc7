"""Hooks into verl internals (installed as ``gdpo_verl_plugins``). One concern per module, each guarded by the verl
shapes it needs (``verl_shapes.py``). Every verl call site we hook, in one table: ``plugins/README.md``."""
