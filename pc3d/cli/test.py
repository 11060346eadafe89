"""The ``pc3d test`` command: evaluate a checkpoint with its config's metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import add_command, add_config_argument, add_device_argument, add_overrides_argument

DESCRIPTION = "Evaluate a checkpoint with the config's metrics on its data.test split (else data.val)."

EPILOG = """\
The metrics are printed, and with --json written to a file (a metric that is NaN or infinite is
written as null). Under torchrun each process evaluates its
shard and the results are gathered.

examples:
  pc3d test my_config.yaml runs/a/best.pth --json results.json
  pc3d test my_config.yaml runs/a/epoch_12.pth --set data.test.batch_size=16 --device cpu
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pc3d test`` to the ``pc3d`` parser."""
    parser = add_command(
        subparsers, "test", "evaluate a checkpoint with its config's metrics", DESCRIPTION, EPILOG
    )
    add_config_argument(parser)
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", type=Path, help="a pc3d checkpoint (.pth) or a weights file"
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the metrics to FILE as JSON"
    )
    add_overrides_argument(
        parser, "override config keys, values parsed as YAML (--set data.test.batch_size=16)"
    )
    add_device_argument(parser, "evaluate")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; 0 on success."""
    # Imported here: torch and the engine take seconds to import, and `pc3d --help` needs neither.
    from pc3d.config import load_config
    from pc3d.engine.runner import run_test

    config = load_config(args.config, args.overrides)
    run_test(config, args.checkpoint, json_path=args.json, device=args.device)
    return 0
