"""``pc3d det2d``: write the data sets the det2d configs use.

    pc3d det2d shapes DIR [--split train] [--num-images 300] [--seed 0] [--image-size 128] ...
    pc3d det2d kitti ROOT DIR ID [ID ...] [--split train]

Declared in the entry-point group ``pc3d.commands`` (``det2d = "pc3d_det2d.cli:register"``), so
``pc3d --help`` lists the command without importing this plugin (it shows the ``help`` of the
``add_parser("det2d", ...)`` call below, read from this file). The arguments use the words of the
core commands (``pc3d.cli.arguments``): ROOT is a KITTI object folder as ``pc3d show --kitti ROOT``
takes it, DIR a folder to write, ID a frame id.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pc3d.cli.arguments import KITTI_ROOT_HELP

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``det2d`` command and its ``shapes`` and ``kitti`` actions to ``subparsers``."""
    parser = subparsers.add_parser(
        "det2d",
        help="write COCO-format 2D detection data sets: synthetic shapes or KITTI images",
        description="Write the COCO-format 2D detection data sets the det2d configs use.",
    )
    actions = parser.add_subparsers(dest="det2d_command", metavar="ACTION", required=True)
    # These parsers have the argparse shape of the two actions and of the core commands' (pc3d/cli) on
    # purpose: each declares its own options; there is no logic to share.
    shapes = actions.add_parser(
        "shapes",
        help="write the synthetic shapes set (deterministic by seed)",
        description="Write the synthetic shapes set: filled rectangles, ellipses and triangles on textured "
        "noise with their boxes, as COCO annotations and PNG images (the same files for the same seed).",
    )
    shapes.add_argument(
        "out_dir", type=Path, metavar="DIR", help="folder to write annotations/ and images/ to"
    )
    shapes.add_argument("--split", default="train", metavar="NAME", help="name of the split (default train)")
    shapes.add_argument(
        "--num-images", type=int, default=300, metavar="N", help="number of images (default 300)"
    )
    shapes.add_argument("--seed", type=int, default=0, help="seed of the shapes (default 0)")
    shapes.add_argument(
        "--image-size",
        type=int,
        default=128,
        metavar="PIXELS",
        help="width and height of each image (default 128)",
    )
    shapes.add_argument(
        "--max-objects", type=int, default=4, metavar="N", help="most shapes per image (default 4)"
    )
    shapes.add_argument(
        "--min-size", type=int, default=16, metavar="PIXELS", help="smallest shape side (default 16)"
    )
    shapes.add_argument(
        "--max-size", type=int, default=56, metavar="PIXELS", help="largest shape side (default 56)"
    )
    kitti = actions.add_parser(
        "kitti",
        help="convert KITTI image_2 + label_2 frames to COCO (DontCare left out)",
        description="Convert the camera images and labels of KITTI frames to a COCO data set; "
        "DontCare regions are left out.",
    )
    kitti.add_argument(
        "kitti", type=Path, metavar="ROOT", help=f"{KITTI_ROOT_HELP}; its image_2/ and label_2/ are read"
    )
    kitti.add_argument(
        "out_dir", type=Path, metavar="DIR", help="folder to write annotations/ and images/ to"
    )
    kitti.add_argument("frames", nargs="+", metavar="ID", help="KITTI frame ids, e.g. 000001")
    kitti.add_argument("--split", default="train", metavar="NAME", help="name of the split (default train)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set ``args`` describe and print its annotation file; the exit status."""
    if args.det2d_command == "shapes":
        from pc3d_det2d.shapes import make_shapes_coco

        path = make_shapes_coco(
            args.out_dir,
            args.split,
            args.num_images,
            args.seed,
            args.image_size,
            args.max_objects,
            args.min_size,
            args.max_size,
        )
    else:
        from pc3d.cli.inputs import kitti_training_dir
        from pc3d_det2d.kitti import kitti_to_coco

        path = kitti_to_coco(kitti_training_dir(args.kitti), args.out_dir, args.frames, args.split)
    print(path)
    return 0
