"""Make and prepare data sets: synthetic LiDAR scenes in the KITTI layout, GT-sampling databases."""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import CONFIG_HELP, OVERRIDES_HELP, add_config_argument, add_overrides_argument


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "data",
        help="make data sets: synthetic LiDAR scenes in the KITTI layout, GT-sampling databases",
        description=__doc__,
    )
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
    synth.add_argument(
        "out_dir", type=Path, metavar="DIR", help="folder to write: the KITTI root (pc3d show --kitti DIR)"
    )
    synth.add_argument("--scenes", type=int, default=200, metavar="N", help="number of scenes (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    synth.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of the scenes listed in ImageSets/val.txt (default 0.2)",
    )
    synth.add_argument(
        "--point-labels",
        action="store_true",
        help="also write per-point semantic labels to training/semantic/*.label",
    )
    synth.add_argument(
        "--workers", type=int, default=1, help="processes generating scenes (same output for any number)"
    )
    synth.set_defaults(func=run_synth)
    database = commands.add_parser(
        "gt-database",
        help="cut the training split's objects out into a GT-sampling database",
        description=(
            "Build the ground-truth database that a config's ObjectSample augmentation pastes from: "
            "every object of the training split's classes with the points inside its box, written to "
            "the db_path of the config's ObjectSample step (or --out)."
        ),
    )
    add_config_argument(database, f"{CONFIG_HELP}; its data.train.dataset is read")
    database.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="output .npz (default: ObjectSample's db_path)"
    )
    add_overrides_argument(database, f"{OVERRIDES_HELP} (--set data_root=data/kitti)")
    database.set_defaults(func=run_gt_database)


def run_gt_database(args: argparse.Namespace) -> int:
    from pc3d.config import load_config
    from pc3d.data.gt_database import GTDatabase, gt_database_from_config

    path = gt_database_from_config(load_config(args.config, args.overrides), args.out, progress=True)
    database = GTDatabase.load(path)
    counts = {name: int((database.labels == i).sum()) for i, name in enumerate(database.class_names)}
    print(
        f"wrote {path}: {len(database.labels)} objects ({', '.join(f'{k} {v}' for k, v in counts.items())})"
    )
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from pc3d.data.synthetic import write_synthetic_kitti

    root = write_synthetic_kitti(
        args.out_dir,
        scenes=args.scenes,
        seed=args.seed,
        val_fraction=args.val_fraction,
        point_labels=args.point_labels,
        progress=True,
        workers=args.workers,
    )
    print(f"wrote {args.scenes} scenes to {root} (KITTI layout; splits in {root / 'ImageSets'})")
    return 0
