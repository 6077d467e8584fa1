"""`ambiview-cli`: the headless face of the session.

Each subcommand is a module in `ambiview.cli.commands` with `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the default.  Errors meant for the user are raised as `CliError` and printed without a
traceback.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands


class CliError(Exception):
    """A problem with the user's input, reported as one clear line and exit code 2 (or `code`)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ambiview-cli", description="AmbiView without a window.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"ambiview-cli {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ambiview-cli ... | head`: the reader left; say nothing more
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
