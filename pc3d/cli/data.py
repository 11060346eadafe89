"""Make and prepare data sets: synthetic LiDAR scenes in the KITTI layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("data", help="make and prepare data sets", description=__doc__)
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    synth = commands.add_parser(
        "synth",
        help="write synthetic LiDAR scenes in the KITTI layout",
        description=(
            "Write synthetic street scenes seen by a simulated 64-beam spinning LiDAR in the KITTI "
            "layout (training/velodyne, label_2, calib; ImageSets/train, val, trainval). Scene i "
            "of a seed is always the same, whatever --scenes says."
        ),
    )
    synth.add_argument("out", type=Path, metavar="OUT", help="folder to write (the KITTI root)")
    synth.add_argument("--scenes", type=int, default=200, help="number of scenes (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    synth.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of the scenes listed in ImageSets/val.txt (default 0.2)"
    )
    synth.add_argument(
        "--point-labels", action="store_true", help="also write per-point semantic labels to training/semantic/*.label"
    )
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from pc3d.data.synthetic import write_synthetic_kitti

    root = write_synthetic_kitti(
        args.out, scenes=args.scenes, seed=args.seed, val_fraction=args.val_fraction, point_labels=args.point_labels,
        progress=True,
    )
    print(f"wrote {args.scenes} scenes to {root} (KITTI layout; splits in {root / 'ImageSets'})")
    return 0
