"""The ``pc3d test`` command: evaluate a checkpoint with its config's metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import (
    OVERRIDES_HELP,
    add_command,
    add_config_argument,
    add_device_argument,
    add_overrides_argument,
)

DESCRIPTION = "Evaluate a checkpoint with the config's metrics on its data.test split (else data.val)."

EPILOG = """\
The metrics are printed, and with --json also written to FILE (a metric that is NaN or infinite
is written as null). Under `torchrun --nproc_per_node N -m pc3d test CONFIG CHECKPOINT` each of
the N processes evaluates its shard of the split and the results are gathered. --optimize
evaluates the model's inference copy where it has one (3D detectors: folded norms, channels-last,
Winograd convs, empty BEV tiles skipped on the CPU): the same detections to float rounding,
1.5x-1.9x faster for PointPillars on a 2-core CPU.

examples:
  pc3d test my_config.yaml runs/a/best.pth --json results.json
  pc3d test my_config.yaml runs/a/epoch_12.pth --set data.val.num_workers=0 --device cpu
  pc3d test pointpillars_hv-secfpn_kitti-3d-3class pointpillars.pth --optimize
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
    # Declared like pc3d train's and pc3d config show's options (see pc3d.cli.arguments): these are
    # this command's own.
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="also write the metrics to FILE as JSON"
    )
    add_overrides_argument(parser, f"{OVERRIDES_HELP} (--set data.val.num_workers=0)")
    add_device_argument(parser, "evaluate")
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="evaluate the model's inference copy (where it has one); results agree to float rounding",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate as ``args`` say; 0 on success."""
    # Imported here: torch and the engine take seconds to import, and `pc3d --help` needs neither.
    from pc3d.config import load_config
    from pc3d.engine.runner import run_test

    if args.json is not None:  # before the evaluation, which can take an hour
        from pc3d.cli.inputs import writable_file

        writable_file(args.json, "--json")
    config = load_config(args.config, args.overrides)
    run_test(config, args.checkpoint, json_path=args.json, device=args.device, optimize=args.optimize)
    return 0
