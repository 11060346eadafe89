"""Train, evaluate and show a 3D detector on synthetic LiDAR scenes: pc3d's main job."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import OVERRIDES_HELP, add_overrides_argument


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` command to `subparsers`."""
    parser = subparsers.add_parser(
        "demo",
        description="Generate synthetic LiDAR scenes, build the GT database, train a small PointPillars on the "
        "CPU, evaluate it with the KITTI protocol and render its predictions, all under --work-dir "
        "(model.pth, config.yaml, metrics.json, loss.png, pr_curves.png, renders, report.md).",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("work_dirs/demo"),
        metavar="WORK_DIR",
        help="where outputs go (default work_dirs/demo)",
    )
    parser.add_argument(
        "--scenes",
        type=int,
        default=300,
        metavar="N",
        help="number of scenes, a fifth of them for validation (default 300)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of training (default 0)")
    add_overrides_argument(parser, f"{OVERRIDES_HELP} (--set schedule.epochs=2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the main job; the exit status."""
    from pc3d.demo import DemoSettings, run_demo

    run_demo(
        DemoSettings(work_dir=args.work_dir, scenes=args.scenes, seed=args.seed, overrides=args.overrides)
    )
    return 0
