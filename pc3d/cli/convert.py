"""`pc3d convert`: boxes or points from one coordinate system (and file format) to another.

    pc3d convert --src camera --dst lidar --calib calib/000001.txt boxes_cam.json boxes_lidar.json
    pc3d convert --src lidar --dst camera --calib calib/000001.txt scan.bin scan_cam.pcd

Without `--calib` the default axis permutation between the systems is used (MMDetection3D's);
with a KITTI calibration, LiDAR <-> camera uses `R0_rect @ Tr_velo_to_cam` (and its inverse).
Box files: `.json`, `.csv`, `.txt`, `.npy`; point files: `.bin`, `.npy`, `.pcd`, `.ply`.
`--src` may be left out for box files that state their mode. The output format follows OUT's
extension, so `--src X --dst X` converts formats only.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError

_MODES = ("lidar", "camera", "depth")
_BOX_SUFFIXES = (".json", ".csv", ".txt")
_POINT_SUFFIXES = (".bin", ".pcd", ".ply")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert boxes or points between the LiDAR, Camera and Depth systems (and file formats)",
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, metavar="IN")
    parser.add_argument("output", type=Path, metavar="OUT")
    parser.add_argument("--src", type=str.lower, choices=_MODES, default=None,
                        help="system of IN (optional for box files that state their mode)")
    parser.add_argument("--dst", type=str.lower, choices=_MODES, required=True, help="system of OUT")
    parser.add_argument("--calib", type=Path, default=None,
                        help="KITTI calib/*.txt relating the LiDAR and camera systems")
    parser.add_argument("--what", choices=("auto", "boxes", "points"), default="auto",
                        help="what IN holds (auto: by extension; .npy needs --what)")
    parser.add_argument("--num-features", type=int, default=None,
                        help="float32 values per point of a .bin input (default 4)")
    parser.add_argument("--nan-policy", choices=("drop", "raise"), default="drop",
                        help="points with NaN/inf coordinates: drop them with a warning (default) or fail")
    parser.add_argument("--ascii", action="store_true", help="write .pcd/.ply as text instead of binary")
    parser.set_defaults(func=run)


def _kind(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if what != "auto":
        return what
    if suffix in _BOX_SUFFIXES:
        return "boxes"
    if suffix in _POINT_SUFFIXES:
        return "points"
    if suffix == ".npy":
        raise FormatError(f"{path}: a .npy file may hold boxes or points; pass --what boxes or --what points")
    raise FormatError(
        f"{path}: unknown extension {path.suffix!r}; boxes: .json .csv .txt .npy, points: .bin .npy .pcd .ply"
    )


def rt_mat_from_calib(calib_path: Path | None, src: str, dst: str) -> np.ndarray | None:
    """The `src -> dst` matrix given by a KITTI calibration, or None without one."""
    if calib_path is None:
        return None
    from pc3d.io.kitti import read_kitti_calib

    calib = read_kitti_calib(calib_path)
    if {src, dst} != {"lidar", "camera"}:
        raise FormatError(
            f"{calib_path}: a KITTI calibration relates the lidar and camera systems; "
            f"it cannot convert {src} -> {dst} (leave out --calib for the default axis permutation)"
        )
    return calib.lidar_to_cam if src == "lidar" else calib.cam_to_lidar


def run(args: argparse.Namespace) -> int:
    if not args.input.exists():
        raise FileNotFoundError(f"{args.input} does not exist")
    kind = _kind(args.input, args.what)
    out_suffix = args.output.suffix.lower()
    allowed = (*_BOX_SUFFIXES, ".npy") if kind == "boxes" else (*_POINT_SUFFIXES, ".npy")
    if out_suffix not in allowed:
        raise FormatError(f"{args.output}: cannot write {kind} as {args.output.suffix!r}; use one of {' '.join(allowed)}")
    if kind == "boxes":
        message = _convert_boxes(args)
    else:
        message = _convert_points(args)
    print(message)
    return 0


def _convert_boxes(args: argparse.Namespace) -> str:
    from pc3d.io.boxes import BoxFile, read_box_file, resolve_mode, write_box_file
    from pc3d.structures import box_class

    data = read_box_file(args.input)
    src = resolve_mode(data, args.src)
    rt_mat = rt_mat_from_calib(args.calib, src, args.dst)
    boxes = box_class(src)(data.boxes)
    converted = boxes.convert_to(args.dst, rt_mat) if (src != args.dst or rt_mat is not None) else boxes
    write_box_file(args.output, BoxFile(converted.numpy(), args.dst, data.labels, data.scores, data.meta))
    how = f"with {args.calib}" if args.calib is not None else "with the default axis permutation"
    return f"{len(boxes)} boxes {src} -> {args.dst} ({how}): wrote {args.output}"


def _convert_points(args: argparse.Namespace) -> str:
    from pc3d.io.points import points_from_data, read_point_file, write_point_file

    if args.src is None:
        raise FormatError(f"{args.input}: point files do not state their system; pass --src lidar|camera|depth")
    rt_mat = rt_mat_from_calib(args.calib, args.src, args.dst)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_point_file(args.input, args.num_features, nan_policy=args.nan_policy)
    for warning in caught:
        print(f"pc3d convert: warning: {warning.message}", file=sys.stderr)
    points = points_from_data(data, args.src)
    converted = points.convert_to(args.dst, rt_mat) if (args.src != args.dst or rt_mat is not None) else points
    array = converted.tensor.numpy()
    write_point_file(args.output, array, data.fields, "ascii" if args.ascii else "binary")
    how = f"with {args.calib}" if args.calib is not None else "with the default axis permutation"
    return f"{data.num_points:,} points ({', '.join(data.fields)}) {args.src} -> {args.dst} ({how}): wrote {args.output}"
