"""`pc3d test CONFIG CHECKPOINT`: evaluate a checkpoint with the config's metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "test",
        help="evaluate a checkpoint with the config's metrics",
        description="Evaluate CHECKPOINT on the config's data.test (else data.val) with its "
        "metrics, print them, and with --json write them to a file. Works under torchrun too.",
    )
    parser.add_argument("config", metavar="CONFIG", help="config file, or a config name a plugin ships")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help="a .pth checkpoint or weights file")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the metrics to FILE as JSON")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config keys, values parsed as YAML",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: runtime.device (auto)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pc3d.engine.runner import run_test  # late: torch import is slow

    config = load_config(args.config, args.overrides)
    run_test(config, args.checkpoint, json_path=args.json, device=args.device)
    return 0
