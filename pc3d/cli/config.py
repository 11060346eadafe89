"""`pc3d config`: show a fully resolved config, list the configs plugins ship."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from pc3d.config import Config, build, list_configs, load_config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "config", help="show a resolved config, list configs", description=__doc__
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show",
        help="print the fully resolved config (bases merged, overrides applied)",
        description="Print CONFIG with its _base_ chain merged and --set overrides applied, as "
        "YAML. CONFIG is a file or the name of a config a plugin ships (see `pc3d config list`).",
    )
    show.add_argument("config", metavar="CONFIG", help="config file or name")
    show.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override a key, value parsed as YAML: --set model.head.num_classes=3 train.lr=0.002",
    )
    show.add_argument(
        "--sources", action="store_true", help="print where each key was set instead of YAML"
    )
    show.add_argument(
        "--check",
        action="store_true",
        help="also build every top-level component (a mapping with 'type') to validate it",
    )
    show.set_defaults(func=run_show)

    listing = actions.add_parser("list", help="list the configs installed plugins ship")
    listing.set_defaults(func=run_list)


def run_show(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    if args.check:
        from pc3d.registry import KINDS

        for key, value in config.data.items():
            if isinstance(value, dict) and "type" in value and key in KINDS:
                build(config.node(key), kind=key)
    if args.sources:
        width = max((len(".".join(p)) for p in config.sources), default=0)
        for path in sorted(config.sources, key=_source_order(config)):
            print(f"{'.'.join(path):<{width}}  {config.sources[path]}")
    else:
        print(config.to_yaml(), end="")
    return 0


def _source_order(config: Config) -> Callable[[tuple[str, ...]], int]:
    # Keys in the order they appear in the resolved data, not alphabetically.
    order = {path: index for index, path in enumerate(_paths(config.data))}
    return lambda path: order.get(path, len(order))


def _paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    items: Iterable[tuple[object, object]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    found: list[tuple[str, ...]] = []
    for key, item in items:
        path = prefix + (str(key),)
        found.append(path)
        found.extend(_paths(item, path))
    return found


def run_list(args: argparse.Namespace) -> int:
    configs = list_configs()
    if not configs:
        print("no configs: no loaded plugin contributes a config folder (see `pc3d plugins`)")
    for path in configs:
        print(path)
    return 0
