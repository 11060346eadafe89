"""The ``pc3d config`` command: print a resolved config, list the shipped configs (the zoo and plugins').

The top level imports only the standard library (``pc3d --help`` builds this parser); the
commands import the config layer when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pc3d.cli.arguments import OVERRIDES_HELP, add_command, add_config_argument, add_overrides_argument

if TYPE_CHECKING:
    from pc3d.config import Config, KeyPath

#: Shown by ``pc3d config --help``; each line starting with ``pc3d`` is run by the tests.
EXAMPLES = """\
examples:
  pc3d config list
  pc3d config show pillar-center-tiny_kitti-mini-3class --set optimizer.lr=0.001 schedule.epochs=40
  pc3d config show pillar-center-tiny_kitti-mini-3class --sources
  pc3d config show pillar-center-tiny_kitti-mini-3class --check --set model.backbone.channels=[32,128]
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pc3d config show|list`` to the ``pc3d`` parser."""
    parser = add_command(
        subparsers,
        "config",
        "print a resolved config or list the shipped configs (the zoo and plugins')",
        "Print a config with its bases merged, overrides applied and references resolved, or list the "
        "configs pc3d and the installed plugins ship.",
        EXAMPLES,
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    _add_show(actions)
    listing = actions.add_parser(
        "list",
        help="list the shipped configs and where each comes from",
        description="List every config file in the config folders of pc3d and the loaded "
        "plugins: the distribution that ships it (core for pc3d itself), then its path.",
    )
    listing.set_defaults(func=run_list)


def _add_show(actions: argparse._SubParsersAction) -> None:
    show = actions.add_parser(
        "show",
        help="print a config fully resolved",
        description="Print CONFIG as YAML with its _base_ chain merged, --set overrides applied "
        "and ${...} references resolved. CONFIG is a file or the name of a shipped config (see "
        "pc3d config list).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_argument(show)
    add_overrides_argument(show, f"{OVERRIDES_HELP} (--set optimizer.lr=0.001 model.head.num_classes=3)")
    show.add_argument(
        "--sources",
        action="store_true",
        help="print where each key was set (file:line or --set) instead of YAML",
    )
    show.add_argument(
        "--check",
        action="store_true",
        help="also check the training sections and build the model and metrics to validate them",
    )
    show.set_defaults(func=run_show)


def run_show(args: argparse.Namespace) -> int:
    """``pc3d config show``: print the resolved config or its sources table."""
    from pc3d.config import load_config

    config = load_config(args.config, args.overrides)
    if args.check:
        check(config)
    if args.sources:
        width = max((len(".".join(p)) for p in config.sources), default=0)
        for path in sorted(config.sources, key=_source_order(config)):
            print(f"{'.'.join(path):<{width}}  {config.sources[path]}")
    else:
        print(config.to_yaml(), end="")
    if args.check:  # on stderr: stdout stays the YAML alone (for a pipe or a file)
        print(f"pc3d config: {args.config}: check passed", file=sys.stderr)
    return 0


def check(config: Config) -> None:
    """Parse the engine's sections (bounds included), check the optimizer and schedule, build
    the top-level components (the model, metrics), check ``train.best_metric`` against the
    metrics' names, and check the datasets and training hooks.

    Datasets are checked, not built: building one reads (or generates) its data. So their
    checks are those of their arguments (names, types, bounds), and the checks of the optimizer
    and schedule are the ones that need neither the model's parameters nor the data's size.

    Raises:
        ConfigError: The first problem found, naming its key and origin.
    """
    from pc3d.config import ARGUMENT_KINDS, build, check_component
    from pc3d.engine.optim import check_optimizer, check_schedule
    from pc3d.engine.schema import parse_run_spec
    from pc3d.engine.state import check_best_metric

    spec = parse_run_spec(config)
    if spec.optimizer is not None:
        check_optimizer(spec.optimizer, config.node("optimizer"))
    if spec.data.train is not None or config.data.get("schedule") is not None:
        check_schedule(spec.schedule)  # a model-only config (for test or infer) needs none
    built: dict[str, list[Any]] = {}
    for key, value in config.data.items():
        kind = ARGUMENT_KINDS.get(key)
        if kind is None:
            continue
        if isinstance(value, dict) and "type" in value:
            built[key] = [build(config.node(key), kind=kind)]
        elif isinstance(value, list):
            built[key] = [build(config.node(f"{key}.{index}"), kind=kind) for index in range(len(value))]
    check_best_metric(spec.train.best_metric, built.get("metrics", []))
    for split in ("train", "val", "test"):
        if getattr(spec.data, split) is not None:
            check_component(config.node(f"data.{split}.dataset"), kind="dataset")
    for index in range(len(spec.train.hooks)):
        check_component(config.node(f"train.hooks.{index}"), kind="train_hook")


def _source_order(config: Config) -> Callable[[KeyPath], int]:
    # Keys in the order they appear in the resolved data, not alphabetically.
    from pc3d.config.keys import sub_paths

    order = {path: index for index, path in enumerate(sub_paths(config.data, ()))}
    return lambda path: order.get(path, len(order))


def run_list(args: argparse.Namespace) -> int:
    """``pc3d config list``: one line per config, ``SOURCE  PATH``."""
    from pc3d.config import list_configs
    from pc3d.plugin_manager import get_plugin_manager

    rows: list[tuple[str, Path]] = []
    for info in get_plugin_manager().loaded:
        source = "core" if info.distribution == "pc3d" else info.label
        rows.extend((source, path) for path in list_configs(info.config_dirs))
    if not rows:
        print("no configs: no loaded plugin contributes a config folder (see pc3d plugins)")
    width = max((len(source) for source, _ in rows), default=0)
    for source, path in rows:
        print(f"{source:<{width}}  {path}")
    return 0
