"""``pc3d det2d``: write the data sets the det2d configs use.

    pc3d det2d shapes ROOT [--split train] [--num-images 300] [--seed 0] [--image-size 128] ...
    pc3d det2d kitti KITTI_ROOT OUT_ROOT FRAME [FRAME ...] [--split train]
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("det2d", help="write COCO-format 2D detection data (synthetic shapes, KITTI images)")
    commands = parser.add_subparsers(dest="det2d_command", required=True)
    shapes = commands.add_parser("shapes", help="the synthetic shapes set (deterministic by seed)")
    shapes.add_argument("root", help="folder for annotations/ and images/")
    shapes.add_argument("--split", default="train")
    shapes.add_argument("--num-images", type=int, default=300)
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--image-size", type=int, default=128)
    shapes.add_argument("--max-objects", type=int, default=4)
    shapes.add_argument("--min-size", type=int, default=16)
    shapes.add_argument("--max-size", type=int, default=56)
    kitti = commands.add_parser("kitti", help="KITTI image_2 + label_2 frames as COCO (DontCare left out)")
    kitti.add_argument("kitti_root", help="folder holding image_2/ and label_2/")
    kitti.add_argument("out_root")
    kitti.add_argument("frames", nargs="+", help="frame names, e.g. 000001")
    kitti.add_argument("--split", default="train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.det2d_command == "shapes":
        from pc3d_det2d.shapes import make_shapes_coco

        path = make_shapes_coco(
            args.root, args.split, args.num_images, args.seed, args.image_size, args.max_objects, args.min_size, args.max_size
        )
    else:
        from pc3d_det2d.kitti import kitti_to_coco

        path = kitti_to_coco(args.kitti_root, args.out_root, args.frames, args.split)
    print(path)
    return 0
