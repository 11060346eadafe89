"""The `pc3d` command line.

Commands are declared here by name, a one-line summary and the `module:function` that adds their
argparse sub-parser; the module is imported only when its command runs (or when a test asks for
every parser), so `pc3d --help` and light commands such as `pc3d info` do not pay for heavy ones
(torch, open3d, plugins). Each command module's top level imports only the standard library;
its `run(args)` imports what the command needs.

Plugins add commands through entry points of the group `pc3d.commands` (name = `module:function`,
the function taking the sub-parser collection, like the core `register` functions). They are read
from the installed distributions' metadata without importing the plugin, and only when the
command line names no core command. `pc3d --help` lists a plugin command with the `help` its
module gives in `add_parser("NAME", help="...")`, read from the module's source (not imported)
when it is a plain string; otherwise as "a command of the DIST plugin".

Errors a user can fix (`Pc3dError`, `OSError` such as a missing file) print one line
`pc3d <command>: error: <message>` and exit with status 2; Ctrl-C prints
`pc3d <command>: error: interrupted` and exits with 130; warnings print as
`pc3d <command>: warning: <message>`. No traceback reaches the user (set `PC3D_DEBUG=1` to see
the traceback of an unexpected error).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pc3d import __version__
from pc3d.errors import Pc3dError, did_you_mean

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction

__all__ = [
    "COMMANDS_GROUP",
    "CORE_COMMANDS",
    "Command",
    "LazyCommands",
    "build_parser",
    "declared_help",
    "load_all_commands",
    "main",
    "plugin_commands",
]

#: Entry-point group of plugin commands: `name = "module:function"`.
COMMANDS_GROUP = "pc3d.commands"
DESCRIPTION = "pc3d: 3D point-cloud detection and coordinate toolkit."
EPILOG = "Run 'pc3d COMMAND --help' for the arguments of a command."
# Exit status of a usage or input error (argparse's too), and of an interrupted command.
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1


@dataclass(frozen=True)
class Command:
    """A `pc3d` subcommand, declared without importing its implementation.

    Attributes:
        name: What the user types (`pc3d NAME ...`).
        summary: One line for `pc3d --help`, lowercase, no final period (argparse's style).
        target: `"module:function"`; the function takes the sub-parser collection and adds the
            command's parser (`subparsers.add_parser(name, ...)`, with `func` set as default).
        source: The distribution that provides it (`pc3d` for the core commands).
    """

    name: str
    summary: str
    target: str
    source: str = "pc3d"

    def load(self) -> Callable[[Any], object]:
        """Import the target and return the function that adds the parser.

        Raises:
            Pc3dError: the module does not import or has no such function (naming the plugin).
        """
        module_name, _, attr = self.target.partition(":")
        try:
            function: Callable[[Any], object] = getattr(importlib.import_module(module_name), attr)
            return function
        except (ImportError, AttributeError) as err:
            raise Pc3dError(
                f"command {self.name!r} of {self.source} could not be loaded from {self.target}: "
                f"{type(err).__name__}: {err}"
            ) from err


# A table, one row per command: the rows share their shape, not their content.
CORE_COMMANDS: tuple[Command, ...] = (
    Command(
        "demo",
        "make synthetic LiDAR scenes, then train, evaluate and draw a small 3D detector on them",
        "pc3d.cli.demo:register",
    ),
    Command(
        "kitti-boxes",
        "turn the labels of a KITTI frame into LiDAR boxes and count their points",
        "pc3d.cli.kitti_boxes:register",
    ),
    Command(
        "info", "print the count, fields and bounds of a point-cloud or box file", "pc3d.cli.info:register"
    ),
    Command(
        "convert",
        "convert boxes or points between coordinate systems and file formats",
        "pc3d.cli.convert:register",
    ),
    Command("show", "draw a point cloud with its boxes, in a window or as a PNG", "pc3d.cli.show:register"),
    Command("plugins", "list the installed plugins and what each registers", "pc3d.cli.plugins:register"),
    Command(
        "config",
        "print a resolved config, or list the shipped configs (the zoo and plugins')",
        "pc3d.cli.config:register",
    ),
    Command(
        "kitti-eval",
        "compute the official KITTI AP11/AP40 of detection label files",
        "pc3d.cli.kitti_eval:register",
    ),
    Command(
        "data",
        "make data sets: synthetic LiDAR scenes in the KITTI layout, GT-sampling databases",
        "pc3d.cli.data:register",
    ),
    Command("train", "train a model from a config", "pc3d.cli.train:register"),
    Command("test", "evaluate a checkpoint with its config's metrics", "pc3d.cli.test:register"),
    Command(
        "plot",
        "draw a training run's loss, learning-rate and metric curves as a PNG",
        "pc3d.cli.plot:register",
    ),
    Command("infer", "run a model on point clouds and write its predictions", "pc3d.cli.infer:register"),
    Command(
        "checkpoint",
        "describe checkpoints; convert checkpoints of other toolkits to pc3d checkpoints",
        "pc3d.cli.checkpoint:register",
    ),
)


class LazyCommands(_SubParsers):
    """The `pc3d` sub-parser collection: commands are listed at once, their parsers built on use.

    `declare` adds a placeholder parser (so the name is a valid choice and `pc3d --help` lists its
    summary); when the command is chosen, its target function runs and its `add_parser` call
    replaces the placeholder.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared: dict[str, Command] = {}
        self.problems: dict[str, str] = {}
        self._built: set[str] = set()
        self._building: str | None = None

    def declare(self, command: Command, problem: str | None = None) -> None:
        """List `command`; with a `problem`, choosing it fails with that message instead."""
        self.declared[command.name] = command
        if problem is not None:
            self.problems[command.name] = problem
        super().add_parser(command.name, help=command.summary, add_help=False)

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a parser; while a declared command is being built, replace its placeholder."""
        if name == self._building:
            del self._name_parser_map[name]
            kwargs.pop("help", None)  # the listing keeps the declared summary
        return super().add_parser(name, **kwargs)

    def build(self, name: str) -> argparse.ArgumentParser:
        """The real parser of declared command `name` (built once).

        Raises:
            Pc3dError: the command cannot be loaded, or its function added no parser of that name.
        """
        command = self.declared[name]
        if name in self._built:
            return self._name_parser_map[name]
        if name in self.problems:
            raise Pc3dError(self.problems[name])
        placeholder = self._name_parser_map[name]
        add = command.load()
        self._building = name
        try:
            add(self)
        finally:
            self._building = None
        if self._name_parser_map.get(name, placeholder) is placeholder:
            raise Pc3dError(
                f"command {name!r} of {command.source}: {command.target} added no parser named {name!r}"
            )
        self._built.add(name)
        return self._name_parser_map[name]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: Any = None,
    ) -> None:
        """Build the chosen command's parser, then let argparse parse its arguments."""
        name = values[0] if values else None
        if name in self.declared:
            self.build(name)
        super().__call__(parser, namespace, values, option_string)


def plugin_commands() -> tuple[list[Command], dict[str, str]]:
    """Commands of the entry-point group `pc3d.commands`, read without importing any plugin.

    Returns:
        The commands (by name), and the problem of each name two distributions both claim or
        that a core command already has (running it then fails with that message).
    """
    from importlib.metadata import entry_points

    core = {c.name for c in CORE_COMMANDS}
    found: dict[str, Command] = {}
    problems: dict[str, str] = {}
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        dist = ep.dist.metadata["Name"] if ep.dist is not None else "an unknown distribution"
        declared = declared_help(ep.value, ep.name)
        summary = f"{declared} ({dist} plugin)" if declared else f"a command of the {dist} plugin"
        command = Command(ep.name, summary, ep.value, dist)
        if ep.name in core:
            warnings.warn(
                f"plugin {dist} declares the command {ep.name!r}, a core command; ignored", stacklevel=2
            )
        elif ep.name in found and found[ep.name].source != dist:
            problems[ep.name] = (
                f"two plugins declare the command {ep.name!r}: {found[ep.name].source} and {dist}; "
                "uninstall one of them"
            )
        else:
            found.setdefault(ep.name, command)
    return list(found.values()), problems


def declared_help(target: str, name: str) -> str | None:
    """The `help` string of the `add_parser(name, help="...")` call in the module of `target`
    (`"module:function"`), read from its source without importing it.

    Returns:
        The help text, or None: the module is not found, or gives no such call with a plain
        string (a computed help is only known once the module runs).
    """
    import ast

    path = _module_source(target.partition(":")[0])
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_parser"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == name
        ):
            continue
        for keyword in node.keywords:
            if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                text = keyword.value.value
                return text.strip() if isinstance(text, str) and text.strip() else None
    return None


def _module_source(module: str) -> Path | None:
    """The `.py` file of `module`, found without importing it or its packages."""
    import importlib.util

    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or ():
        base = Path(location, *rest.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def command_name(argv: Sequence[str]) -> str | None:
    """The command an argument list names: its first argument not starting with `-`."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `pc3d` parser, its commands declared but not built.

    Args:
        argv: The arguments it is built for: plugin commands are looked up unless they name a
            core command. None: always look them up (for `pc3d --help` and tests).

    Returns:
        The parser; its sub-parser collection is a `LazyCommands`.
    """
    parser = argparse.ArgumentParser(prog="pc3d", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--version", action="version", version=f"pc3d {__version__}", help="print pc3d's version and exit"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", action=LazyCommands, title="commands")
    assert isinstance(commands, LazyCommands)
    for command in CORE_COMMANDS:
        commands.declare(command)
    if argv is None or command_name(argv) not in commands.declared:
        found, problems = plugin_commands()
        for command in found:
            commands.declare(command, problems.get(command.name))
    return parser


def subcommands(parser: argparse.ArgumentParser) -> LazyCommands:
    """The `LazyCommands` of a parser made by `build_parser`."""
    return next(a for a in parser._actions if isinstance(a, LazyCommands))


def load_all_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Build every declared command's parser (imports every command module and plugin command).

    Returns:
        Command name -> its parser.
    """
    commands = subcommands(parser)
    return {name: commands.build(name) for name in commands.declared if name not in commands.problems}


@contextmanager
def cli_warnings(prog: str, stream: TextIO | None = None) -> Iterator[None]:
    """Within the block, warnings print as one line `<prog>: warning: <message>`."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"{prog}: warning: {message}", file=stream or file or sys.stderr)

    # catch_warnings restores the previous hook, and resets the "shown once" bookkeeping.
    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


#: How torch re-raises an error of a data-loader worker: the type's name, then the worker's
#: traceback as the message, ending with the original ``module.Type: message`` line.
_WORKER_ERROR = re.compile(r"Caught (\w+) in DataLoader worker process \d+\.\nOriginal Traceback")


def error_line(err: BaseException) -> str:
    """The one-line message of an error a user can act on (for an error raised in a data-loader
    worker, the original message without the worker's traceback)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    text = str(err)
    wrapped = _WORKER_ERROR.match(text)
    if wrapped is not None:
        kind = re.escape(wrapped.group(1))
        lines = re.findall(rf"^(?:[\w.]+\.)?{kind}: (.*)$", text, flags=re.M)
        if lines:
            return lines[-1]
    return text or type(err).__name__


def _rank_tag() -> str:
    """`` [rank 1]`` in a process of a multi-process run (torchrun's ``RANK``, ``WORLD_SIZE``):
    every rank prints its own errors, and they must be told apart."""
    world, rank = os.environ.get("WORLD_SIZE", ""), os.environ.get("RANK", "")
    return f" [rank {rank}]" if world.isdigit() and int(world) > 1 and rank.isdigit() else ""


def _lost_a_peer(err: BaseException) -> bool:
    """A collective of a multi-process run failed: another rank died or timed out (not a bug)."""
    if not _rank_tag() or "torch.distributed" not in sys.modules:
        return False
    import torch.distributed as torch_dist

    if isinstance(err, torch_dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        mark in text for mark in ("[gloo", "NCCL", "Connection closed by peer", "Connection reset by peer")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run `pc3d` with `argv` (default: the process arguments).

    Returns:
        The exit status: the command's (0 on success), 2 for bad input or usage, 130 when
        interrupted, 1 for an unexpected error (a bug; `PC3D_DEBUG=1` shows its traceback).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    prog = f"pc3d {command_name(args_list) or ''}".rstrip() + _rank_tag()
    with cli_warnings(prog):
        try:
            return _run(args_list)
        except (Pc3dError, OSError) as err:
            if isinstance(err, BrokenPipeError):  # `pc3d info x | head`: stop quietly
                return _closed_stdout()
            print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"{prog}: error: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as err:  # the last line of defence: one line, no traceback
            if os.environ.get("PC3D_DEBUG") == "1":
                raise
            if _lost_a_peer(err):
                print(
                    f"{prog}: error: another process of the run stopped, or did not answer within "
                    f"runtime.dist_timeout (its own error, if it had one, is printed too): "
                    f"{error_line(err).splitlines()[0]}",
                    file=sys.stderr,
                )
                return EXIT_ERROR
            print(
                f"{prog}: error: unexpected {type(err).__name__}: {error_line(err)} (this is a bug in pc3d; "
                "run again with PC3D_DEBUG=1 to see where)",
                file=sys.stderr,
            )
            return EXIT_INTERNAL


def _run(argv: list[str]) -> int:
    parser = build_parser(argv)
    name = command_name(argv)
    declared = subcommands(parser).declared
    if name is not None and name not in declared:
        parser.error(f"unknown command {name!r}{did_you_mean(name, declared)}; 'pc3d --help' lists them")
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse's own message names neither the command nor what was meant
        chosen = _chosen_parser(parser, argv)
        options = [option for action in chosen._actions for option in action.option_strings]
        first = next((extra for extra in extras if extra.startswith("-")), None)
        hint = did_you_mean(first.split("=", 1)[0], options) if first is not None else ""
        chosen.error(f"unrecognized arguments: {' '.join(extras)}{hint}; '{chosen.prog} --help' lists them")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_ERROR
    from pc3d.allocator import keep_freed_memory

    keep_freed_memory()  # the process is pc3d's: large maps reuse freed memory (PC3D_MALLOC=system: no)
    return int(func(args) or 0)


def _chosen_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub-)parser of the deepest command ``argv`` names (``pc3d data synth`` -> ``synth``'s)."""
    current = parser
    for token in argv:
        action = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        if action is None:
            break
        if token in action.choices:
            current = action.choices[token]
    return current


def _closed_stdout() -> int:
    # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
