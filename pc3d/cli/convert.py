"""`pc3d convert`: boxes or points from one coordinate system (and file format) to another.

Everything runs on numpy, torch is never imported: a change of system uses the conversion
kernels of `pc3d.structures.coord_transform` (the ones the box and point structures use), which
take numpy arrays as well as tensors.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pc3d.cli.arguments import add_command, add_input_output_arguments, add_nan_policy_argument
from pc3d.cli.inputs import must_exist
from pc3d.structures.box_mode import MODE_NAMES

if TYPE_CHECKING:
    import numpy as np

MODES = MODE_NAMES
DESCRIPTION = (
    "Convert boxes or points between the LiDAR, Camera and Depth coordinate systems, "
    "and between file formats."
)
EXAMPLES = """examples:
  pc3d convert --src camera --dst lidar --calib calib/000001.txt boxes_cam.json boxes_lidar.json
  pc3d convert --src lidar --dst camera --calib calib/000001.txt scan.bin scan_cam.pcd
  pc3d convert --src lidar --dst lidar scan.bin scan.ply                 # file format only

Without --calib the default axis permutation between the systems is used (MMDetection3D's);
with a KITTI calibration, LiDAR <-> camera uses R0_rect @ Tr_velo_to_cam (and its inverse).
KITTI label_2 files need their frame's --calib to go to or from lidar.
Box files: .json .csv .txt .npy; point files: .bin .npy .pcd .ply. What INPUT holds follows its
extension (a .npy with named fields or fewer than 7 columns is a point cloud, any other .npy
needs --what). The format of OUTPUT follows its extension.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `convert` command to `subparsers`."""
    from pc3d.io.file_kinds import FILE_KINDS

    parser = add_command(subparsers, "convert", None, DESCRIPTION, EXAMPLES)
    add_input_output_arguments(
        parser, "box file or point cloud to read", "file to write; its extension chooses the format"
    )
    parser.add_argument(
        "--src",
        type=str.lower,
        choices=MODES,
        default=None,
        help="system of INPUT (optional for box files that state their mode)",
    )
    parser.add_argument("--dst", type=str.lower, choices=MODES, required=True, help="system of OUTPUT")
    parser.add_argument(
        "--calib",
        type=Path,
        default=None,
        metavar="FILE",
        help="KITTI calib/*.txt relating the LiDAR and camera systems",
    )
    parser.add_argument(
        "--what",
        choices=FILE_KINDS,
        default="auto",
        help="what INPUT holds (default auto: by extension, see below)",
    )
    parser.add_argument(
        "--num-features",
        type=int,
        default=None,
        metavar="N",
        help="float32 values per point of a .bin input (default 4)",
    )
    add_nan_policy_argument(parser)
    parser.add_argument("--ascii", action="store_true", help="write .pcd/.ply as text instead of binary")
    parser.set_defaults(func=run)


def rt_mat_from_calib(calib_path: Path | None, src: str, dst: str) -> np.ndarray | None:
    """The `src -> dst` matrix given by a KITTI calibration, or None without one.

    Raises:
        FormatError: the calibration does not relate `src` and `dst` (only LiDAR <-> camera).
    """
    if calib_path is None:
        return None
    from pc3d.errors import FormatError
    from pc3d.io import read_kitti_calib

    must_exist(calib_path, "--calib")
    calib = read_kitti_calib(calib_path)
    if {src, dst} != {"lidar", "camera"}:
        raise FormatError(
            f"{calib_path}: a KITTI calibration relates the lidar and camera systems; "
            f"it cannot convert {src} -> {dst} (leave out --calib for the default axis permutation)"
        )
    return calib.lidar_to_cam if src == "lidar" else calib.cam_to_lidar


def run(args: argparse.Namespace) -> int:
    """Convert `args.input` into `args.output`; the exit status."""
    from pc3d.errors import FormatError
    from pc3d.io.boxes import BOX_EXTENSIONS
    from pc3d.io.file_kinds import file_kind
    from pc3d.io.points import POINT_EXTENSIONS

    must_exist(args.input)
    kind = file_kind(args.input, args.what)
    allowed = BOX_EXTENSIONS if kind == "boxes" else POINT_EXTENSIONS
    if args.output.suffix.lower() not in allowed:
        raise FormatError(
            f"{args.output}: cannot write {kind} as {args.output.suffix!r}; use one of {' '.join(allowed)}"
        )
    print(_convert_boxes(args) if kind == "boxes" else _convert_points(args))
    return 0


def _how(args: argparse.Namespace, src: str) -> str:
    if args.calib is not None:
        return f"with {args.calib}"
    return "file format only" if src == args.dst else "with the default axis permutation"


def _convert_boxes(args: argparse.Namespace) -> str:
    from pc3d.io import BoxFile, read_box_file, write_box_file
    from pc3d.io.boxes import resolve_mode

    data = read_box_file(args.input)
    src = resolve_mode(data, args.src)
    if (
        data.meta.get("format") == "kitti label_2"
        and {src, args.dst} == {"camera", "lidar"}
        and args.calib is None
    ):
        from pc3d.errors import FormatError

        # As pc3d show: the default axis swap has no translation (KITTI boxes would land ~0.3-0.7 m off).
        raise FormatError(
            f"{args.input}: KITTI label_2 boxes are in the rectified camera frame of their frame's "
            f"calibration; converting them to {args.dst} needs it: pass --calib calib/<frame>.txt"
        )
    rt_mat = rt_mat_from_calib(args.calib, src, args.dst)
    boxes = data.boxes
    if src != args.dst or rt_mat is not None:
        from pc3d.structures.coord_transform import convert_box_tensor

        boxes = convert_box_tensor(data.boxes, src, args.dst, rt_mat)
    write_box_file(args.output, BoxFile(boxes, args.dst, data.labels, data.scores, data.meta))
    return f"{len(data)} boxes {src} -> {args.dst} ({_how(args, src)}): wrote {args.output}"


def _convert_points(args: argparse.Namespace) -> str:
    from pc3d.errors import FormatError
    from pc3d.io import read_point_file, write_point_file

    if args.src is None:
        raise FormatError(
            f"{args.input}: point files do not state their system; pass --src lidar|camera|depth"
        )
    rt_mat = rt_mat_from_calib(args.calib, args.src, args.dst)
    data = read_point_file(args.input, args.num_features, nan_policy=args.nan_policy)
    array = data.array
    if args.src != args.dst or rt_mat is not None:
        from pc3d.structures.coord_transform import convert_point_tensor

        array = convert_point_tensor(array, args.src, args.dst, rt_mat)
    write_point_file(args.output, array, data.fields, "ascii" if args.ascii else "binary")
    fields = ", ".join(data.fields)
    return f"{data.num_points:,} points ({fields}) {args.src} -> {args.dst} ({_how(args, args.src)}): wrote {args.output}"
