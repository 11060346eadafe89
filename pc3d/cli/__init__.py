"""The `pc3d` command. Each subcommand lives in its own module exposing `register(subparsers)`,
which adds an argparse sub-parser whose `func` default is called with the parsed arguments and
returns the exit status."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pc3d import __version__
from pc3d.errors import Pc3dError

# Modules providing subcommands, in the order `pc3d --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "pc3d.cli.demo",
    "pc3d.cli.info",
    "pc3d.cli.convert",
    "pc3d.cli.show",
    "pc3d.cli.plugins",
    "pc3d.cli.config",
    "pc3d.cli.kitti_eval",
    "pc3d.cli.train",
    "pc3d.cli.test",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pc3d", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pc3d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _add_plugin_commands(subparsers)
    return parser


def _add_plugin_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Plugins may add subcommands (hook `pc3d_add_cli_commands`); a failing one is skipped."""
    from pc3d.plugin_manager import add_plugin_cli_commands  # late: loading plugins imports them

    add_plugin_cli_commands(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (Pc3dError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        print(f"pc3d {args.command}: error: {err}", file=sys.stderr)
        return 2
