"""OpenRLHF's ``train_ppo_ray`` with GDPO: ``python -m gdpo_verl_plugins.openrlhf.train_ppo_ray <the usual
OpenRLHF arguments> --algo.advantage.estimator gdpo --gdpo.reward_keys correct,format``.

Runs OpenRLHF's own CLI module (its parser, its checks, its ``train``) with three additions:
- ``gdpo`` among ``--algo.advantage.estimator``'s choices, and the ``--gdpo.*`` flags (:mod:`.settings`);
- every GDPO setting validated right after parsing, before Ray starts (argparse error, exit 2);
- ``ray.init`` given :data:`.worker_setup.HOOK` as ``worker_process_setup_hook``, so the trainer's Ray workers
  build ``GDPOExperienceMaker``; the settings reach them inside ``strategy.args.gdpo``.
"""

from __future__ import annotations

import argparse
import contextlib
import runpy
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from gdpo_verl_plugins.openrlhf import settings, shapes, worker_setup

ESTIMATOR_FLAG = "--algo.advantage.estimator"


def with_setup_hook(runtime_env: dict | None) -> dict:
    """``runtime_env`` plus our worker setup hook; a different hook already there is an error (Ray takes one)."""
    env = dict(runtime_env or {})
    current = env.get("worker_process_setup_hook")
    if current not in (None, worker_setup.HOOK):
        raise ValueError(
            f"runtime_env already has worker_process_setup_hook={current!r}; GDPO needs {worker_setup.HOOK!r} "
            "there to build its experience maker in the trainer's workers. Call both from one hook of yours."
        )
    env["worker_process_setup_hook"] = worker_setup.HOOK
    return env


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    own = name in vars(obj)
    original = vars(obj)[name] if own else None
    setattr(obj, name, value)
    try:
        yield
    finally:
        if own:
            setattr(obj, name, original)
        else:
            delattr(obj, name)


def _add_argument(original):
    def add_argument(self, *names, **kwargs):
        choices = kwargs.get("choices")
        if ESTIMATOR_FLAG in names and choices is not None and settings.ESTIMATOR not in choices:
            kwargs["choices"] = [*choices, settings.ESTIMATOR]
        return original(self, *names, **kwargs)

    return add_argument


def _parse_args(original):
    def parse_args(self, args=None, namespace=None):
        from openrlhf.utils.config import hierarchize

        dests = {a.dest for a in self._actions}
        if ESTIMATOR_FLAG.removeprefix("--") not in dests:  # another parser: not OpenRLHF's
            return original(self, args, namespace)
        if f"gdpo.{settings.KEYS_FLAG}" not in dests:
            settings.add_arguments(self)
        parsed = original(self, args, namespace)
        try:
            settings.validate(hierarchize(argparse.Namespace(**vars(parsed))))
        except ValueError as exc:  # argparse's error exit, without the (very long) usage text
            self.exit(2, f"{self.prog}: error: {exc}\n")
        return parsed

    return parse_args


def _ray_init(original):
    def init(*args, **kwargs):
        kwargs["runtime_env"] = with_setup_hook(kwargs.get("runtime_env"))
        return original(*args, **kwargs)

    return init


class _Parsed(Exception):
    def __init__(self, args: Any) -> None:
        self.args_ = args


def _stop_with_args(args: Any) -> None:
    raise _Parsed(args)


@contextlib.contextmanager
def _gdpo_cli(argv: Sequence[str] | None) -> Iterator[None]:
    import ray

    shapes.require_module(shapes.LAUNCHER)  # not imported here: runpy runs it as __main__
    shapes.require("openrlhf.utils.config")
    worker_setup.install()  # this process too
    saved_argv = sys.argv
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = argparse.ArgumentParser
    try:
        with (
            _patched(parser, "add_argument", _add_argument(vars(argparse._ActionsContainer)["add_argument"])),
            _patched(parser, "parse_args", _parse_args(vars(parser)["parse_args"])),
            _patched(ray, "init", _ray_init(ray.init)),
        ):
            yield
    finally:
        sys.argv = saved_argv


def main(argv: Sequence[str] | None = None) -> None:
    """Run OpenRLHF's ``train_ppo_ray`` CLI on ``argv`` (default: this process's arguments) with GDPO added."""
    with _gdpo_cli(argv):
        runpy.run_module(shapes.LAUNCHER, run_name="__main__", alter_sys=True)


def parse_args(argv: Sequence[str]) -> Any:
    """OpenRLHF's hierarchized args for ``argv`` after its own checks and adjustments and GDPO's, without starting
    Ray or training (stops where ``train`` would build the DeepSpeed strategy)."""
    import openrlhf.utils
    import ray

    with _gdpo_cli(argv), _patched(ray, "is_initialized", lambda: True):
        with _patched(openrlhf.utils, "get_strategy", _stop_with_args):
            try:
                runpy.run_module(shapes.LAUNCHER, run_name="__main__")
            except _Parsed as parsed:
                return parsed.args_
    raise RuntimeError(f"{shapes.LAUNCHER} finished without reaching train(args)")


if __name__ == "__main__":
    main()
