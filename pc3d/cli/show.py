"""`pc3d show`: look at a point cloud with its boxes and predictions, in a window or as a PNG.

    pc3d show scan.bin --boxes gt.json --pred dets.json --out shot.png      # off-screen PNG
    pc3d show scan.bin --boxes label_2/000001.txt --calib calib/000001.txt  # KITTI labels, window
    pc3d show --kitti data/kitti/training --frame 000001 --out bev.png      # a KITTI frame
    pc3d show --kitti data/kitti/training --frame 000001 --view camera --out cam.png

Without `--out` an interactive Open3D window opens; with `--out` the picture is rendered
off-screen (under `xvfb-run -a`, or through EGL when there is no display at all).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pc3d.errors import FormatError

if TYPE_CHECKING:
    from pc3d.vis.scene import BoxSet

_VIEWS = ("bev", "front", "orbit", "camera")
_MODES = ("lidar", "camera", "depth")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "show",
        help="draw a point cloud with boxes/predictions (window, or PNG with --out)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cloud", nargs="?", type=Path, help="point cloud: .bin, .npy, .pcd or .ply")
    parser.add_argument("--kitti", type=Path, metavar="ROOT",
                        help="KITTI 'training' folder (with velodyne/, calib/, label_2/, image_2/)")
    parser.add_argument("--frame", metavar="ID", help="KITTI frame id with --kitti, e.g. 000001")
    parser.add_argument("--boxes", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="ground-truth box files: pc3d .json/.csv/.txt/.npy, or KITTI label_2 .txt")
    parser.add_argument("--pred", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="prediction box files (same formats; KITTI result .txt with scores)")
    parser.add_argument("--mode", choices=_MODES, default="lidar",
                        help="coordinate system of the cloud, and of box files that do not state one (default lidar)")
    parser.add_argument("--calib", type=Path, metavar="FILE",
                        help="KITTI calib .txt: puts camera boxes on LiDAR points; its P2 projects onto --image")
    parser.add_argument("--image", type=Path, metavar="PATH", help="camera image for --view camera (needs --calib)")
    parser.add_argument("--out", type=Path, metavar="PNG", help="write a PNG instead of opening a window")
    parser.add_argument("--size", default="1280x720", metavar="WxH", help="image/window size (default 1280x720)")
    parser.add_argument("--view", choices=_VIEWS, default=None,
                        help="bev (default), front, orbit, or camera (boxes on the image; default with --image)")
    parser.add_argument("--color-by", choices=("height", "intensity", "label"), default="height",
                        help="point colours: height (default), intensity (4th column) or label (box colour)")
    parser.add_argument("--score-thr", type=float, default=0.0, metavar="X", help="hide predictions scoring below X")
    parser.add_argument("--labels", action="store_true", help="write class (and score) next to each box")
    parser.add_argument("--no-legend", action="store_true", help="leave out the legend and scale bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pc3d.vis as vis

    size = vis.parse_size(args.size)
    view = args.view or ("camera" if args.image is not None else "bev")
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise FormatError(f"--out {args.out}: the output must be a .png file")
    if not np.isfinite(args.score_thr):
        raise FormatError(f"--score-thr {args.score_thr}: expected a finite number")
    inputs = _kitti_inputs(args) if args.kitti is not None else _file_inputs(args)
    points, gt, pred, lidar2cam, projection, image_path, forward_only = inputs
    legend = not args.no_legend

    if view == "camera":
        if projection is None or image_path is None:
            raise FormatError(
                "--view camera needs a camera image and its P2: pass --image PATH and --calib FILE (or --kitti)"
            )
        img = vis.render_camera_view(
            image_path, gt, pred, projection=projection, lidar2cam=lidar2cam, mode=args.mode,
            score_thr=args.score_thr, labels=args.labels, legend=legend,
        )
        if args.out is None:
            vis.show_image(img)
        else:
            vis.save_png(img, args.out)
            print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, camera view)")
        return 0

    common = dict(
        view=view, size=size, mode=args.mode, lidar2cam=lidar2cam, color_by=args.color_by,
        score_thr=args.score_thr, forward_only=forward_only,
    )
    if args.out is None:
        vis.show(points, gt, pred, **common)
        return 0
    img = vis.render(points, gt, pred, out=args.out, labels=args.labels, legend=legend, **common)
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}, {view} view)")
    return 0


# points, GT, predictions, LiDAR->camera, P2, camera image, frame only the scan's front half
Inputs = tuple[
    np.ndarray, "BoxSet | None", "BoxSet | None", "np.ndarray | None", "np.ndarray | None", "Path | None", bool
]


def _file_inputs(args: argparse.Namespace) -> Inputs:
    from pc3d.io import read_kitti_calib, read_point_file

    if args.frame is not None:
        raise FormatError("--frame only goes with --kitti ROOT")
    if args.cloud is None:
        raise FormatError("give a point cloud file (pc3d show CLOUD ...) or a KITTI frame (--kitti ROOT --frame ID)")
    _must_exist(args.cloud, "point cloud")
    points = read_point_file(args.cloud).array
    lidar2cam = projection = None
    if args.calib is not None:
        _must_exist(args.calib, "--calib")
        calib = read_kitti_calib(args.calib)
        lidar2cam, projection = calib.lidar_to_cam, calib.P2
    if args.image is not None:
        _must_exist(args.image, "--image")
    gt = _read_box_files(args.boxes, args.mode, "--boxes")
    pred = _read_box_files(args.pred, args.mode, "--pred")
    return points, gt, pred, lidar2cam, projection, args.image, False


def _kitti_inputs(args: argparse.Namespace) -> Inputs:
    from pc3d.io import load_kitti_frame, read_kitti_calib
    from pc3d.vis.scene import BoxSet

    if args.cloud is not None:
        raise FormatError("give either a point cloud file or --kitti ROOT --frame ID, not both")
    if args.frame is None:
        raise FormatError("--kitti needs --frame ID (e.g. --frame 000001)")
    if args.mode != "lidar":
        raise FormatError("--kitti frames are LiDAR scans; leave out --mode")
    # "1" and "000001" name the same frame (KITTI stems are six digits).
    frame_id: str | int = int(args.frame) if args.frame.isdigit() and len(args.frame) < 6 else args.frame
    frame = load_kitti_frame(args.kitti, frame_id)
    calib = frame.calib
    if args.calib is not None:
        _must_exist(args.calib, "--calib")
        calib = read_kitti_calib(args.calib)
    image_path = frame.image_path
    if args.image is not None:
        _must_exist(args.image, "--image")
        image_path = args.image
    if image_path is None and args.view == "camera":
        missing = args.kitti / "image_2" / f"{frame.frame_id}.png"
        raise FileNotFoundError(f"frame {frame.frame_id}: {missing} does not exist; --view camera needs it")
    gt: BoxSet | None = None
    if frame.labels is not None:
        objects = frame.labels.objects()
        gt = BoxSet(objects.to_camera_boxes().tensor.numpy(), "camera", [str(t) for t in objects.types])
    extra = _read_box_files(args.boxes, "lidar", "--boxes")
    if extra is not None:
        gt = extra if gt is None else _concat(gt, extra, calib.lidar_to_cam)
    pred = _read_box_files(args.pred, "lidar", "--pred")
    # KITTI labels only cover the camera's view ahead: frame that half of the scan.
    return frame.points.array, gt, pred, calib.lidar_to_cam, calib.P2, image_path, True


def _must_exist(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what}: {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{what}: {path} is a folder, expected a file")


def _read_box_files(paths: list[Path], default_mode: str, what: str) -> BoxSet | None:
    """The boxes of all `paths` as one BoxSet in the first file's system (None when no paths)."""
    if not paths:
        return None
    sets = [_read_box_file(p, default_mode, what) for p in paths]
    out = sets[0]
    for other in sets[1:]:
        out = _concat(out, other, None)
    return out


def _read_box_file(path: Path, default_mode: str, what: str) -> BoxSet:
    from pc3d.io import read_box_file
    from pc3d.vis.scene import BoxSet

    _must_exist(path, what)
    data = read_box_file(path)  # KITTI label_2 files are recognised and read as camera boxes
    try:
        return BoxSet(data.boxes, data.mode or default_mode, data.labels, data.scores)
    except FormatError as err:
        raise FormatError(f"{path}: {err}") from None


def _concat(a: BoxSet, b: BoxSet, lidar2cam: np.ndarray | None) -> BoxSet:
    """Two box sets as one, `b` converted into `a`'s system (extra columns beyond the common width dropped)."""
    from pc3d.vis.scene import BoxSet, convert_box_set

    b = convert_box_set(b, a.mode, lidar2cam)
    width = min(a.boxes.shape[1], b.boxes.shape[1])
    labels = None
    if a.labels is not None or b.labels is not None:
        labels = (a.labels or [""] * len(a)) + (b.labels or [""] * len(b))
    scores = None
    if a.scores is not None and b.scores is not None:
        scores = np.concatenate([a.scores, b.scores])
    return BoxSet(np.concatenate([a.boxes[:, :width], b.boxes[:, :width]]), a.mode, labels, scores)
