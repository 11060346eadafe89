"""The arguments several commands take, declared once: the command itself, CONFIG, INPUT OUTPUT,
--set, --device, --nan-policy, and the words for a KITTI root.

Standard library only (``pc3d --help`` builds every parser). The other commands' ``add_parser`` and
``add_argument`` calls look alike on purpose: each declares options of its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: Where a model runs, for ``--device`` of the config-driven commands (the engine's choices).
DEVICES = ("auto", "cpu", "cuda")

#: What ``--nan-policy`` accepts: ``pc3d.io.points.NAN_POLICIES`` but "keep", which would hand
#: NaN coordinates on to code that cannot use them (``pc3d info`` counts them without the option).
NAN_POLICIES = ("drop", "raise")

#: How the help of ``--set`` starts everywhere (each command adds an example).
OVERRIDES_HELP = "override config keys, values parsed as YAML"

#: How a command names a config it reads (the help of CONFIG starts so everywhere).
CONFIG_HELP = "config file, or the name of a shipped config"

#: The help of a KITTI object folder read with ``pc3d.cli.inputs.kitti_training_dir``: every command
#: that reads one (ROOT) accepts both.
KITTI_ROOT_HELP = "KITTI object folder: its root (holding training/) or training/ itself"


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str | None,
    description: str,
    epilog: str,
) -> argparse.ArgumentParser:
    """Add the command ``name`` whose epilog (examples) is printed as written.

    Args:
        subparsers: The ``pc3d`` parser's (or a command's) sub-parsers.
        name: The command's name.
        help: Its line in the parent's ``--help``; None for a core command, which is listed with
            the summary it is declared with (``pc3d.cli.CORE_COMMANDS``).
        description: What ``pc3d NAME --help`` says first.
        epilog: Printed verbatim after the options (line breaks kept).

    Returns:
        The new command's parser.
    """
    # argparse lists a sub-command's help line only when add_parser is given one.
    listing: dict[str, Any] = {} if help is None else {"help": help}
    return subparsers.add_parser(
        name,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **listing,
    )


def add_config_argument(
    parser: argparse.ArgumentParser, help: str = f"{CONFIG_HELP} (see pc3d config list)"
) -> None:
    """Add the positional ``CONFIG`` (``args.config``): a config file or a shipped config's name.

    Args:
        parser: The command's parser.
        help: Its help text (starting with :data:`CONFIG_HELP`).
    """
    parser.add_argument("config", metavar="CONFIG", help=help)


def add_input_output_arguments(parser: argparse.ArgumentParser, input_help: str, output_help: str) -> None:
    """Add the positional ``INPUT OUTPUT`` (``args.input``, ``args.output``, paths) of a command
    that converts one file into another.

    Args:
        parser: The command's parser.
        input_help: What INPUT is.
        output_help: What OUTPUT is.
    """
    parser.add_argument("input", type=Path, metavar="INPUT", help=input_help)
    parser.add_argument("output", type=Path, metavar="OUTPUT", help=output_help)


def add_overrides_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """Add ``--set KEY=VALUE ...`` (``args.overrides``, a list); repeated, the lists add up.

    Args:
        parser: The command's parser.
        help: Its help text: :data:`OVERRIDES_HELP` with an example fitting the command.
    """
    parser.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[], help=help
    )


def add_device_argument(parser: argparse.ArgumentParser, doing: str) -> None:
    """Add ``--device auto|cpu|cuda`` (``args.device``, None for the config's ``runtime.device``).

    Args:
        parser: The command's parser.
        doing: What runs there, for the help text (``"train"`` gives "where to train ...").
    """
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help=f"where to {doing} (default: the config's runtime.device, which defaults to auto)",
    )


def add_nan_policy_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--nan-policy drop|raise`` (``args.nan_policy``, default ``drop``) to a command that
    reads point clouds.

    It is the ``nan_policy`` of ``pc3d.io.points.read_point_file``: points whose x, y or z is NaN
    or infinite are dropped with a warning (the warning names this option) or stop the command
    with an error naming the file and how many points are bad.

    Args:
        parser: The command's parser.
    """
    parser.add_argument(
        "--nan-policy",
        choices=NAN_POLICIES,
        default="drop",
        help="points with NaN/inf coordinates: drop them with a warning (default) or fail",
    )
