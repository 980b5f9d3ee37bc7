"""`gdpo-verl` command line: one sub-command per module, imported only when used (keeps `--help` fast).

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("gdpo_verl.quickstart.cli", "train a tiny model with real verl main_ppo on CPU (GDPO, 2 rewards)"),
    "analyze": ("gdpo_verl.analysis.cli", "collapse diagnostics: distinct advantage groups, rollouts, curves"),
    "check": ("gdpo_verl.check", "compose a verl command line or script with verl's Hydra config and check it"),
    "doctor": ("gdpo_verl.doctor", "show whether verl loads this plugin and which gdpo estimator is active"),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("gdpo-verl")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gdpo-verl", description="GDPO for veRL")
    parser.add_argument("--version", action="version", version=f"gdpo-verl {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "--version") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv[:1] == ["--version"]:
            parser.parse_args(argv[:1])  # prints the version and exits
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"gdpo-verl {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C outside a verl run (which stops itself and says how far it got)
        print(f"gdpo-verl {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
