"""`pc3d kitti-boxes`: a KITTI frame's labels as LiDAR boxes, with the points inside each.

Loads a real KITTI frame (Velodyne scan, calibration, labels), converts its camera-frame labels
to LiDAR boxes with the frame's calibration, counts the LiDAR points inside each box, prints a
summary table and writes the boxes as a JSON box file (`pc3d.io.boxes` format).
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from pc3d.cli.arguments import KITTI_ROOT_HELP, add_nan_policy_argument
from pc3d.cli.inputs import kitti_training_dir
from pc3d.data_files import DEFAULT_DEMO_FRAME, kitti_sample_root

if TYPE_CHECKING:
    import numpy as np

DEFAULT_OUT_DIR = Path("work_dirs") / "kitti-boxes"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `kitti-boxes` command to `subparsers`."""
    parser = subparsers.add_parser(
        "kitti-boxes",
        description="Convert the camera-frame labels of a KITTI frame to LiDAR boxes with its calibration, "
        "count the LiDAR points in each box, print them and write them as a JSON box file.",
    )
    parser.add_argument(
        "--kitti",
        "--root",
        dest="kitti",
        type=Path,
        default=None,
        metavar="ROOT",
        help=f"{KITTI_ROOT_HELP} (default: the sample shipped in tests/data/kitti)",
    )
    parser.add_argument(
        "--frame",
        default=DEFAULT_DEMO_FRAME,
        metavar="ID",
        help=f"KITTI frame id (default {DEFAULT_DEMO_FRAME})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="output JSON (default work_dirs/kitti-boxes/<frame>_lidar_boxes.json)",
    )
    add_nan_policy_argument(parser)
    parser.set_defaults(func=run)


def _display(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to read)."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:  # another drive on Windows
        return str(path)


def run(args: argparse.Namespace) -> int:
    """Convert the chosen frame's labels; the exit status."""
    import numpy as np

    from pc3d.errors import Pc3dError
    from pc3d.io import load_kitti_frame, save_boxes
    from pc3d.io.points import points_from_data

    root = kitti_training_dir(args.kitti) if args.kitti is not None else kitti_sample_root()
    frame = load_kitti_frame(root, args.frame, nan_policy=args.nan_policy)
    if frame.labels is None:
        raise Pc3dError(
            f"frame {frame.frame_id} has no labels: {root / 'label_2' / (frame.frame_id + '.txt')} is missing"
        )
    labels = frame.labels
    objects = labels.objects()
    lidar_boxes = objects.to_lidar_boxes(frame.calib)
    points = points_from_data(frame.points, "lidar")
    box_of_point = lidar_boxes.points_in_boxes(points).numpy()
    # Points per box: each point counts for the first box holding it (boxes rarely overlap).
    counts = np.bincount(box_of_point[box_of_point >= 0], minlength=len(lidar_boxes))

    out = args.out if args.out is not None else DEFAULT_OUT_DIR / f"{frame.frame_id}_lidar_boxes.json"
    names = [str(t) for t in objects.types]
    save_boxes(
        out,
        lidar_boxes,
        labels=names,
        meta={
            "source": "KITTI object training frame",
            "frame": frame.frame_id,
            "velodyne": f"velodyne/{frame.frame_id}.bin",
            "calib": f"calib/{frame.frame_id}.txt",
            "label": f"label_2/{frame.frame_id}.txt",
            "label_lines": objects.line_numbers.tolist(),
            "num_points": frame.points.num_points,
            "points_in_box": counts.tolist(),
        },
    )

    print(f"pc3d kitti-boxes: KITTI frame {frame.frame_id} from {_display(root)}")
    print(f"  points  {frame.points.num_points:,} LiDAR points ({', '.join(frame.points.fields)})")
    num_dont_care = int(labels.dont_care.sum())
    print(
        f"  labels  {len(objects)} objects (+{num_dont_care} DontCare regions, no 3D box) in the camera frame"
    )
    print("  calib   camera -> LiDAR with inv(R0_rect @ Tr_velo_to_cam)")
    print()
    print(_table(names, lidar_boxes.numpy(), counts))
    print()
    per_class = Counter(names)
    print("boxes per class: " + (", ".join(f"{name} {n}" for name, n in sorted(per_class.items())) or "none"))
    inside = int(counts.sum())
    share = 100.0 * inside / max(1, frame.points.num_points)
    print(f"points in boxes: {inside:,} of {frame.points.num_points:,} ({share:.2f} %)")
    print(f"wrote {_display(out)} ({len(lidar_boxes)} LiDAR boxes: x y z at the bottom centre, l w h, yaw)")
    return 0


def _table(names: list[str], boxes: np.ndarray, counts: np.ndarray) -> str:
    header = ("#", "class", "x", "y", "z", "l", "w", "h", "yaw", "points")
    rows: list[tuple[str, ...]] = [header, ("", "", "(m)", "(m)", "(m)", "(m)", "(m)", "(m)", "(rad)", "")]
    for i, (name, box, count) in enumerate(zip(names, boxes, counts, strict=True)):
        rows.append((str(i), name, *(f"{v:.2f}" for v in box[:6]), f"{box[6]:.3f}", f"{int(count):,}"))
    if len(rows) == 2:
        rows.append(("-", "(no objects)", *[""] * 8))
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(w) if k == 1 else cell.rjust(w)
            for k, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)
