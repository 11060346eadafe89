"""The ``pc3d train`` command: train a model from a config, in one process or many (torchrun)."""

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

DESCRIPTION = "Train the model a config describes and write its outputs into the work directory."

EPILOG = """\
The work directory receives the resolved config (config.yaml), log.jsonl, metrics.jsonl and the
checkpoints. Under `torchrun --nproc_per_node N -m pc3d train CONFIG` the run uses N processes
(DistributedDataParallel; gloo on the CPU, nccl on CUDA). Interrupted? Run the same command with
--resume to continue exactly where the last checkpoint left off.

examples:
  pc3d train my_config.yaml --work-dir runs/a --set optimizer.lr=0.002 schedule.epochs=24
  pc3d train my_config.yaml --work-dir runs/a --resume
  pc3d train my_config.yaml --load-from pretrained.pth --device cpu --deterministic
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pc3d train`` to the ``pc3d`` parser."""
    parser = add_command(subparsers, "train", "train a model from a config", DESCRIPTION, EPILOG)
    add_config_argument(parser)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="WORK_DIR",
        help="where outputs go (default: work_dirs/<config name>)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="continue from the checkpoint PATH, or without PATH from the latest one in the work dir",
    )
    parser.add_argument(
        "--load-from", type=Path, default=None, metavar="PATH", help="start from these model weights only"
    )
    add_overrides_argument(parser, f"{OVERRIDES_HELP} (--set schedule.epochs=24 optimizer.lr=0.002)")
    add_device_argument(parser, "train")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="use deterministic algorithms only (same as runtime.deterministic: true)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say; 0 when the schedule ran to its end, 130 when interrupted."""
    # Imported here: torch and the engine take seconds to import, and `pc3d --help` needs neither.
    from pc3d.config import load_config
    from pc3d.engine.runner import RunOptions, run_train

    config = load_config(args.config, args.overrides)
    options = RunOptions(
        work_dir=args.work_dir,
        resume=args.resume,
        load_from=args.load_from,
        device=args.device,
        deterministic=args.deterministic,
    )
    try:
        run_train(config, options)
    except KeyboardInterrupt:
        return 130  # the run has logged where it stopped and how to resume
    return 0
