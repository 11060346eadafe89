"""`pc3d show`: look at a point cloud with its boxes and predictions, in a window or as a PNG."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from pc3d.cli.arguments import KITTI_ROOT_HELP, add_command, add_nan_policy_argument
from pc3d.cli.show_inputs import (
    ShowInputs,
    concat_box_sets,
    file_inputs,
    kitti_inputs,
    read_box_files,
    read_point_labels,
)
from pc3d.structures.box_mode import MODE_NAMES

if TYPE_CHECKING:
    import numpy as np

# The input readers live in pc3d.cli.show_inputs; they stay importable from here.
__all__ = [
    "COLOR_BY",
    "DESCRIPTION",
    "EXAMPLES",
    "MODES",
    "VIEWS",
    "ShowInputs",
    "check_framing",
    "concat_box_sets",
    "file_inputs",
    "kitti_inputs",
    "parse_class_names",
    "read_box_files",
    "read_point_labels",
    "register",
    "run",
]

VIEWS = ("bev", "front", "orbit", "camera")
MODES = MODE_NAMES
COLOR_BY = ("height", "intensity", "label")
DESCRIPTION = (
    "Draw a point cloud with its ground-truth boxes and predictions, in an Open3D window or as a PNG."
)
EXAMPLES = """examples:
  pc3d show scan.bin --boxes gt.json --pred dets.json --out shot.png      # off-screen PNG
  pc3d show scan.bin --boxes label_2/000001.txt --calib calib/000001.txt  # KITTI labels, window
  pc3d show --kitti data/kitti --frame 000001 --out bev.png               # a KITTI frame
  pc3d show --kitti data/kitti --frame 000001 --view camera --out cam.png
  pc3d show --kitti data/kitti --frame 000001 --center 58 16 --zoom 3 --labels --out car.png
  pc3d show scan.bin --range 0 -20 40 20 --color-by intensity --out near.png
  pc3d show scan.bin --point-labels scan.label --out seg.png   # SemanticKITTI .label: its 19 classes
  pc3d show scan.bin --point-labels pred.npy --class-names road,car,building --out seg.png

With boxes, the bird's-eye view frames the boxes plus a margin; --range, --center and --zoom
choose another area (metres along the cloud's forward and left axes: LiDAR x and y).
Without --out an interactive Open3D window opens; with --out the picture is rendered
off-screen (under 'xvfb-run -a', or through EGL when there is no display at all).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `show` command to `subparsers`.

    The argument groups are added in the order `pc3d show --help` lists them.

    Args:
        subparsers: the sub-parser collection of the `pc3d` parser.
    """
    parser = add_command(subparsers, "show", None, DESCRIPTION, EXAMPLES)
    _add_input_arguments(parser)
    _add_output_arguments(parser)
    _add_colour_arguments(parser)
    _add_framing_arguments(parser)
    _add_annotation_arguments(parser)
    parser.set_defaults(func=run)


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Add what is drawn: the cloud or KITTI frame, box files, coordinate mode, calibration, image,
    and what becomes of points with NaN coordinates.

    Args:
        parser: the `show` parser.
    """
    parser.add_argument(
        "cloud",
        nargs="?",
        type=Path,
        metavar="CLOUD",
        help="point cloud: .bin, .npy, .pcd or .ply (or use --kitti)",
    )
    parser.add_argument(
        "--kitti",
        type=Path,
        metavar="ROOT",
        help=KITTI_ROOT_HELP,
    )
    parser.add_argument("--frame", metavar="ID", help="KITTI frame id with --kitti, e.g. 000001")
    for flag, files in (
        ("--boxes", "ground-truth box files: pc3d .json/.csv/.txt/.npy, or KITTI label_2 .txt"),
        ("--pred", "prediction box files (same formats; KITTI result .txt with scores)"),
    ):
        parser.add_argument(
            flag, type=Path, nargs="+", action="extend", default=[], metavar="FILE", help=files
        )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="lidar",
        help="coordinate system of CLOUD, and of box files that do not state one (default lidar)",
    )
    parser.add_argument(
        "--calib",
        type=Path,
        metavar="FILE",
        help="KITTI calib .txt: puts camera boxes on LiDAR points; its P2 projects onto --image",
    )
    parser.add_argument(
        "--image", type=Path, metavar="FILE", help="camera image for --view camera (needs --calib)"
    )
    add_nan_policy_argument(parser)


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add where the picture goes and which one: `--out`, `--size` and `--view`.

    Args:
        parser: the `show` parser.
    """
    parser.add_argument("--out", type=Path, metavar="PNG", help="write a PNG instead of opening a window")
    parser.add_argument(
        "--size", default="1280x720", metavar="WxH", help="image/window size (default 1280x720)"
    )
    parser.add_argument(
        "--view",
        choices=VIEWS,
        default=None,
        help="bev (default), front, orbit, or camera (boxes on the image; default with --image)",
    )


def _add_colour_arguments(parser: argparse.ArgumentParser) -> None:
    """Add how points are coloured: `--color-by`, `--point-labels` and `--class-names`.

    Args:
        parser: the `show` parser.
    """
    parser.add_argument(
        "--color-by",
        choices=COLOR_BY,
        default=None,
        help="point colours: height (default; a colour bar shows the values), intensity "
        "(4th column, with a colour bar), or label: the class in --point-labels "
        "(the default with it), else the colour of the box holding the point",
    )
    parser.add_argument(
        "--point-labels",
        type=Path,
        metavar="FILE",
        help="class id of each point: .npy integer array, or SemanticKITTI-style .label "
        "(uint32, low 16 bits); colours the points by class, with a legend",
    )
    parser.add_argument(
        "--class-names",
        metavar="A,B,...",
        help="comma-separated class names for the ids in --point-labels (default: the ids; "
        "SemanticKITTI's 19 classes for a .label file of its raw ids)",
    )


# Shaped like _add_colour_arguments on purpose: argparse declarations of other options.
def _add_framing_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ground area the camera frames: `--range`, `--center` and `--zoom`.

    Args:
        parser: the `show` parser.
    """
    parser.add_argument(
        "--range",
        type=float,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        dest="bev_range",
        help="frame this ground area, metres along the cloud's forward and left axes "
        "(default: the boxes plus a margin, or the whole cloud without boxes)",
    )
    parser.add_argument(
        "--center",
        type=float,
        nargs=2,
        metavar=("X", "Y"),
        help="centre the view on this ground point, metres (same axes as --range)",
    )
    parser.add_argument(
        "--zoom",
        type=float,
        default=1.0,
        metavar="F",
        help="scale the framed area: 2 shows half the width, objects twice as large (default 1)",
    )


def _add_annotation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add what is written over the picture: `--score-thr`, `--labels` and `--no-legend`.

    Args:
        parser: the `show` parser.
    """
    parser.add_argument(
        "--score-thr", type=float, default=0.0, metavar="X", help="hide predictions scoring below X"
    )
    parser.add_argument(
        "--labels",
        action="store_true",
        help="write class (and score) next to each box; labels are placed so none covers another",
    )
    parser.add_argument(
        "--no-legend", action="store_true", help="leave out the legend, scale bar and colour bar"
    )


def run(args: argparse.Namespace) -> int:
    """Draw what the arguments name; the exit status."""
    import pc3d.vis as vis
    from pc3d.errors import FormatError

    size = vis.parse_size(args.size)
    view = args.view or ("camera" if args.image is not None else "bev")
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise FormatError(f"--out {args.out}: the output must be a .png file")
    if not math.isfinite(args.score_thr):
        raise FormatError(f"--score-thr {args.score_thr}: expected a finite number")
    check_framing(args)
    if args.point_labels is None and args.class_names is not None:
        raise FormatError("--class-names names the ids of --point-labels FILE; give that file too")
    if args.point_labels is not None and args.color_by not in (None, "label"):
        raise FormatError(
            f"--point-labels colours the points by class; it goes with --color-by label, not {args.color_by}"
        )
    inputs = kitti_inputs(args) if args.kitti is not None else file_inputs(args)
    if view == "camera":
        return _camera_view(args, inputs)
    class_names = parse_class_names(args.class_names)
    point_labels = None
    if args.point_labels is not None:
        point_labels = read_point_labels(args.point_labels, inputs.num_file_points)
        if inputs.kept is not None:  # the labels of the points --nan-policy drop kept
            point_labels = point_labels[inputs.kept]
        point_labels, class_names = name_point_labels(args.point_labels, point_labels, class_names)
    # The keywords vis.show and vis.render share, gathered once for either call.
    common = dict(
        view=view,
        size=size,
        mode=args.mode,
        lidar2cam=inputs.lidar2cam,
        color_by=args.color_by,
        score_thr=args.score_thr,
        forward_only=inputs.forward_only,
        bev_range=args.bev_range,
        center=args.center,
        zoom=args.zoom,
        point_labels=point_labels,
        class_names=class_names,
    )
    if args.out is None:
        vis.show(inputs.points, inputs.gt, inputs.pred, **common)
        return 0
    img = vis.render(
        inputs.points,
        inputs.gt,
        inputs.pred,
        out=args.out,
        labels=args.labels,
        legend=not args.no_legend,
        **common,
    )
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, {view} view)")
    return 0


def check_framing(args: argparse.Namespace) -> None:
    """`--range`, `--center` and `--zoom` checked before anything is read.

    Raises:
        FormatError: non-finite numbers, an empty range, or a zoom that is not positive.
    """
    from pc3d.errors import FormatError

    if args.bev_range is not None:
        x0, y0, x1, y1 = args.bev_range
        if not all(math.isfinite(v) for v in args.bev_range) or x1 <= x0 or y1 <= y0:
            raise FormatError(
                f"--range {x0:g} {y0:g} {x1:g} {y1:g}: expected X0 Y0 X1 Y1 with X0 < X1 and Y0 < Y1"
            )
    if args.center is not None and not all(math.isfinite(v) for v in args.center):
        raise FormatError(f"--center {args.center[0]} {args.center[1]}: expected two finite numbers")
    if not (math.isfinite(args.zoom) and args.zoom > 0):
        raise FormatError(f"--zoom {args.zoom}: expected a positive number (2 shows half the width)")


def name_point_labels(
    path: Path, labels: np.ndarray, class_names: list[str] | None
) -> tuple[np.ndarray, list[str] | None]:
    """The labels to draw and their names: a SemanticKITTI ``.label`` file (raw ids, as
    SemanticKITTI and ``pc3d infer --format label`` write them) is read through the official
    learning map, with its 19 class names, when no ``--class-names`` are given; labels past the
    names given are said (they are drawn as ``class N``)."""
    import warnings

    from pc3d.errors import FormatError
    from pc3d.io.semseg import SEMANTICKITTI_CLASSES, SEMANTICKITTI_LABEL_MAP

    if class_names is None and path.suffix.lower() == ".label":
        try:
            return SEMANTICKITTI_LABEL_MAP.apply(labels, path), list(SEMANTICKITTI_CLASSES)
        except FormatError:
            return labels, None  # ids outside SemanticKITTI's map: drawn by number
    if class_names is not None and labels.size and int(labels.max()) >= len(class_names):
        warnings.warn(
            f"{path}: labels go up to {int(labels.max())} but --class-names names {len(class_names)} classes "
            f"(0..{len(class_names) - 1}); the others are drawn as 'class N'",
            stacklevel=2,
        )
    return labels, class_names


def parse_class_names(text: str | None) -> list[str] | None:
    """`--class-names a,b,c` as a list (None when not given).

    Raises:
        FormatError: an empty name.
    """
    from pc3d.errors import FormatError

    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise FormatError(f"--class-names {text!r}: expected comma-separated non-empty names, e.g. road,car")
    return names


def _camera_view(args: argparse.Namespace, inputs: ShowInputs) -> int:
    import pc3d.vis as vis
    from pc3d.errors import FormatError

    if inputs.projection is None or inputs.image_path is None:
        raise FormatError(
            "--view camera needs a camera image and its P2: pass --image FILE and --calib FILE (or --kitti)"
        )
    img = vis.render_camera_view(
        inputs.image_path,
        inputs.gt,
        inputs.pred,
        projection=inputs.projection,
        lidar2cam=inputs.lidar2cam,
        mode=args.mode,
        score_thr=args.score_thr,
        labels=args.labels,
        legend=not args.no_legend,
    )
    if args.out is None:
        vis.show_image(img)
    else:
        vis.save_png(img, args.out)
        print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, camera view)")
    return 0
