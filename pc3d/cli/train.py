"""`pc3d train CONFIG`: train a model from a config (one process, or many under torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config",
        description="Train the model a config describes, writing the resolved config, log.jsonl, "
        "metrics.jsonl and checkpoints into the work directory. Under `torchrun "
        "--nproc_per_node N -m pc3d train CONFIG` it trains with N processes "
        "(DistributedDataParallel; gloo on the CPU, nccl on CUDA).",
        epilog="Interrupted? Run the same command with --resume to continue exactly where the "
        "last checkpoint left off.",
    )
    parser.add_argument("config", metavar="CONFIG", help="config file, or a config name a plugin ships")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where outputs go (default: work_dirs/<config name>)"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="continue from PATH, or without PATH from the latest checkpoint in the work dir",
    )
    parser.add_argument(
        "--load-from", type=Path, default=None, metavar="PATH", help="start from these model weights only"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config keys, values parsed as YAML: --set schedule.epochs=24 optimizer.lr=0.002",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default=None, help="default: runtime.device (auto)"
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic algorithms only (same as runtime.deterministic: true)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pc3d.engine.runner import RunOptions, run_train  # late: torch import is slow

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
        return 130
    return 0
