"""What `pc3d show` draws, read from the files its arguments name: the cloud, the box files (pc3d
box files or KITTI labels), a KITTI frame, the calibration and the per-point class ids.

Like every command module, this one imports only the standard library at its top level; each
function imports what it reads with.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pc3d.cli.inputs import kitti_training_dir, must_exist

if TYPE_CHECKING:
    import numpy as np

    from pc3d.io.points import NanPolicy, PointCloudData
    from pc3d.vis import BoxSet

__all__ = [
    "ShowInputs",
    "concat_box_sets",
    "file_inputs",
    "kitti_inputs",
    "read_box_files",
    "read_point_labels",
]


@dataclass
class ShowInputs:
    """What `pc3d show` draws, read from the files the arguments name.

    Attributes:
        points: `float32[N, 3+C]` cloud.
        gt, pred: ground truth and predictions, or None.
        lidar2cam: `[4, 4]` LiDAR -> camera matrix from a calibration, or None.
        projection: `[3, 4]` camera -> image matrix (`P2`), or None.
        image_path: the camera image, or None.
        forward_only: frame only the scan's front half (KITTI labels cover the camera's view).
        kept: the file's points that `--nan-policy drop` kept (`bool[N_file]`), None when all
            were kept; per-point labels are read for the file's rows and then filtered by it.
    """

    points: np.ndarray
    gt: BoxSet | None
    pred: BoxSet | None
    lidar2cam: np.ndarray | None = None
    projection: np.ndarray | None = None
    image_path: Path | None = None
    forward_only: bool = False
    kept: np.ndarray | None = None

    @property
    def num_file_points(self) -> int:
        """The number of points in the file, before `--nan-policy drop`."""
        return len(self.points) if self.kept is None else len(self.kept)


def _apply_nan_policy(data: PointCloudData, nan_policy: NanPolicy) -> tuple[np.ndarray, np.ndarray | None]:
    """The points `nan_policy` keeps, and which of the file's rows they are (None: all)."""
    from pc3d.io.points import nan_policy_mask

    kept = nan_policy_mask(data.path, data.array, nan_policy)
    return (data.array if kept is None else data.array[kept]), kept


def file_inputs(args: argparse.Namespace) -> ShowInputs:
    """The inputs of `pc3d show CLOUD ...`.

    Raises:
        FormatError: `--frame` without `--kitti`, or no CLOUD.
        FileNotFoundError: a named file does not exist.
    """
    from pc3d.errors import FormatError
    from pc3d.io import read_kitti_calib, read_point_file

    if args.frame is not None:
        raise FormatError("--frame only goes with --kitti ROOT")
    if args.cloud is None:
        raise FormatError(
            "give a point cloud file (pc3d show CLOUD ...) or a KITTI frame (--kitti ROOT --frame ID)"
        )
    must_exist(args.cloud, "point cloud")
    # Read as the file holds them: --point-labels FILE has a label for every row of the file.
    points, kept = _apply_nan_policy(read_point_file(args.cloud, nan_policy="keep"), args.nan_policy)
    inputs = ShowInputs(points, None, None, image_path=args.image, kept=kept)
    if args.calib is not None:
        must_exist(args.calib, "--calib")
        calib = read_kitti_calib(args.calib)
        inputs.lidar2cam, inputs.projection = calib.lidar_to_cam, calib.P2
    if args.image is not None:
        must_exist(args.image, "--image")
    inputs.gt = read_box_files(args.boxes, args.mode, "--boxes")
    inputs.pred = read_box_files(args.pred, args.mode, "--pred")
    return inputs


def kitti_inputs(args: argparse.Namespace) -> ShowInputs:
    """The inputs of `pc3d show --kitti ROOT --frame ID ...` (ROOT: the KITTI root or `training`).

    Raises:
        FormatError: CLOUD with `--kitti`, no `--frame`, or `--mode` other than lidar.
        FileNotFoundError: the frame's files (or `--view camera`'s image) do not exist.
    """
    from pc3d.errors import FormatError
    from pc3d.io import load_kitti_frame, read_kitti_calib
    from pc3d.vis import BoxSet

    if args.cloud is not None:
        raise FormatError("give either a point cloud file or --kitti ROOT --frame ID, not both")
    if args.frame is None:
        raise FormatError("--kitti needs --frame ID (e.g. --frame 000001)")
    if args.mode != "lidar":
        raise FormatError("--kitti frames are LiDAR scans; leave out --mode")
    root = kitti_training_dir(args.kitti)
    # "1" and "000001" name the same frame (KITTI stems are six digits).
    frame_id: str | int = int(args.frame) if args.frame.isdigit() and len(args.frame) < 6 else args.frame
    frame = load_kitti_frame(root, frame_id, nan_policy="keep")
    points, kept = _apply_nan_policy(frame.points, args.nan_policy)
    calib = frame.calib
    if args.calib is not None:
        must_exist(args.calib, "--calib")
        calib = read_kitti_calib(args.calib)
    image_path = frame.image_path
    if args.image is not None:
        must_exist(args.image, "--image")
        image_path = args.image
    if image_path is None and args.view == "camera":
        missing = root / "image_2" / f"{frame.frame_id}.png"
        raise FileNotFoundError(f"frame {frame.frame_id}: {missing} does not exist; --view camera needs it")
    gt: BoxSet | None = None
    if frame.labels is not None:
        objects = frame.labels.objects()
        gt = BoxSet(objects.to_camera_boxes().tensor.numpy(), "camera", [str(t) for t in objects.types])
    extra = read_box_files(args.boxes, "lidar", "--boxes")
    if extra is not None:
        gt = extra if gt is None else concat_box_sets(gt, extra, calib.lidar_to_cam)
    pred = read_box_files(args.pred, "lidar", "--pred")
    # KITTI labels only cover the camera's view ahead: frame that half of the scan.
    return ShowInputs(
        points, gt, pred, calib.lidar_to_cam, calib.P2, image_path, forward_only=True, kept=kept
    )


def read_box_files(paths: list[Path], default_mode: str, what: str) -> BoxSet | None:
    """The boxes of all `paths` as one `BoxSet` in the first file's system (None when no paths).

    Raises:
        FileNotFoundError: a file does not exist.
        FormatError: a file is not a box file (the message names it).
    """
    from pc3d.errors import FormatError
    from pc3d.io import read_box_file
    from pc3d.vis import BoxSet

    sets = []
    for path in paths:
        must_exist(path, what)
        data = read_box_file(path)  # KITTI label_2 files are recognised and read as camera boxes
        try:
            sets.append(BoxSet(data.boxes, data.mode or default_mode, data.labels, data.scores))
        except FormatError as err:
            raise FormatError(f"{path}: {err}") from None
    if not sets:
        return None
    out = sets[0]
    for other in sets[1:]:
        out = concat_box_sets(out, other, None)
    return out


def concat_box_sets(a: BoxSet, b: BoxSet, lidar2cam: np.ndarray | None) -> BoxSet:
    """Two box sets as one, `b` converted into `a`'s system (columns beyond the common width dropped)."""
    import numpy as np

    from pc3d.vis import BoxSet, convert_box_set

    b = convert_box_set(b, a.mode, lidar2cam)
    width = min(a.boxes.shape[1], b.boxes.shape[1])
    labels = None
    if a.labels is not None or b.labels is not None:
        labels = (a.labels or [""] * len(a)) + (b.labels or [""] * len(b))
    scores = None
    if a.scores is not None and b.scores is not None:
        scores = np.concatenate([a.scores, b.scores])
    return BoxSet(np.concatenate([a.boxes[:, :width], b.boxes[:, :width]]), a.mode, labels, scores)


def read_point_labels(path: Path, num_points: int) -> np.ndarray:
    """The per-point class ids of `path`: `.npy` (1-D integers) or `.label` (uint32, low 16 bits).

    Raises:
        FileNotFoundError: no such file.
        FormatError: another suffix, not a 1-D integer array, or not one label per point
            (naming the file).
    """
    import numpy as np

    from pc3d.errors import FormatError
    from pc3d.io.semseg import read_semantickitti_labels

    must_exist(path, "--point-labels")
    suffix = path.suffix.lower()
    if suffix == ".label":
        values, _ = read_semantickitti_labels(path)
    elif suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise FormatError(f"{path}: not a readable .npy array ({err})") from None
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise FormatError(
                f"{path}: expected a 1-D integer array of class ids, got {values.dtype} {values.shape}"
            )
    else:
        raise FormatError(f"{path}: point label files end in .npy or .label")
    if len(values) != num_points:
        raise FormatError(f"{path}: holds {len(values)} labels but the point cloud has {num_points} points")
    return np.asarray(values, dtype=np.int64)
