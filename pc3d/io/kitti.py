"""KITTI object files: `calib/*.txt`, `label_2/*.txt`, and projection of 3D boxes to the image.

Frames (KITTI's):
- LiDAR (Velodyne): x forward, y left, z up.
- Rectified camera 0 (`label_2` boxes live here): x right, y down, z forward.
  `lidar_to_cam = R0_rect @ Tr_velo_to_cam` maps LiDAR to it.
- Image 2 (left colour): pixels, `P2` projects rectified camera coordinates onto it.

Label boxes become `CameraBoxes3D` rows `x, y, z, l, h, w, rotation_y` (KITTI stores `h, w, l`;
MMDetection3D and pc3d order the sizes along the box's own x, y, z axes: length, height, width).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.io.points import PointCloudData, atomic_write_bytes, read_point_file

if TYPE_CHECKING:
    import torch

    from pc3d.structures import Boxes3D, CameraBoxes3D, LiDARBoxes3D

# ------------------------------------------------------------------------------------ calib

# Key in the file -> (field, number of values). KITTI tracking and raw data spell some keys
# differently (Tr_velo_cam, R_rect, Tr_imu_velo); they fill the same fields.
_CALIB_KEYS: dict[str, tuple[str, int]] = {
    "P0": ("P0", 12), "P1": ("P1", 12), "P2": ("P2", 12), "P3": ("P3", 12),
    "R0_rect": ("R0_rect", 9), "R_rect": ("R0_rect", 9),
    "Tr_velo_to_cam": ("Tr_velo_to_cam", 12), "Tr_velo_cam": ("Tr_velo_to_cam", 12),
    "Tr_imu_to_velo": ("Tr_imu_to_velo", 12), "Tr_imu_velo": ("Tr_imu_to_velo", 12),
}  # fmt: skip
_REQUIRED_CALIB = ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam")


def _pad4(matrix: np.ndarray) -> np.ndarray:
    """A 3x3 or 3x4 matrix as 4x4 homogeneous (last row 0, 0, 0, 1)."""
    out = np.eye(4, dtype=np.float64)
    out[: matrix.shape[0], : matrix.shape[1]] = matrix
    return out


@dataclass(frozen=True)
class KittiCalib:
    """One KITTI calibration file; every matrix is `float64 ndarray[4, 4]` (3x4 and 3x3 padded
    with the homogeneous row/column).

    Attributes:
        P0, P1, P2, P3: projection matrices of cameras 0-3 (rectified camera 0 -> image k).
        R0_rect: rectifying rotation of camera 0.
        Tr_velo_to_cam: Velodyne -> (unrectified) camera 0.
        Tr_imu_to_velo: IMU -> Velodyne, or None when the file has none.
        path: the file read, if any.
    """

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray | None = None
    path: Path | None = None

    @property
    def lidar_to_cam(self) -> np.ndarray:
        """`float64 [4, 4]`: LiDAR -> rectified camera, `R0_rect @ Tr_velo_to_cam` (the `rt_mat`
        of `convert_boxes(..., "lidar", "camera", rt_mat)`)."""
        return self.R0_rect @ self.Tr_velo_to_cam

    @property
    def cam_to_lidar(self) -> np.ndarray:
        """`float64 [4, 4]`: rectified camera -> LiDAR, the inverse of `lidar_to_cam`."""
        return np.linalg.inv(self.lidar_to_cam)

    @property
    def cam_to_img(self) -> np.ndarray:
        """`float64 [4, 4]`: `P2`, rectified camera -> left colour image (homogeneous pixels)."""
        return self.P2

    @property
    def lidar_to_img(self) -> np.ndarray:
        """`float64 [4, 4]`: `P2 @ R0_rect @ Tr_velo_to_cam`, LiDAR -> left colour image."""
        return self.P2 @ self.lidar_to_cam


def read_kitti_calib(path: str | os.PathLike[str]) -> KittiCalib:
    """Parse a KITTI `calib/*.txt` file (`KEY: v1 v2 ...` per line; the colon may be missing).

    P0-P3, R0_rect and Tr_velo_to_cam are required, Tr_imu_to_velo optional; unknown keys are
    ignored (raw-data calibrations carry more).

    Raises:
        FormatError: a required key missing, a key given twice, a wrong number of values or a
            non-numeric value, naming the file, the line and the key.
    """
    path = Path(path)
    found: dict[str, tuple[np.ndarray, int]] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if ":" in line:
            key, _, rest = line.partition(":")
        else:
            key, _, rest = line.strip().partition(" ")
        key = key.strip()
        if key not in _CALIB_KEYS:
            continue
        name, expected = _CALIB_KEYS[key]
        values = rest.split()
        if len(values) != expected:
            raise FormatError(
                f"{path}: line {line_no}: {key} has {len(values)} numbers, expected {expected}"
            )
        try:
            numbers = np.array([float(v) for v in values], dtype=np.float64)
        except ValueError as err:
            bad = next(v for v in values if not _is_number(v))
            raise FormatError(f"{path}: line {line_no}: {key} value {bad!r} is not a number") from err
        if not np.isfinite(numbers).all():
            raise FormatError(f"{path}: line {line_no}: {key} holds NaN or infinite values")
        if name in found:
            raise FormatError(f"{path}: line {line_no}: {key} repeats {name} (first given on line {found[name][1]})")
        found[name] = (numbers.reshape(3, -1), line_no)
    missing = [key for key in _REQUIRED_CALIB if key not in found]
    if missing:
        raise FormatError(f"{path}: missing calibration key(s) {', '.join(missing)}")
    matrices = {name: _pad4(matrix) for name, (matrix, _) in found.items()}
    if abs(np.linalg.det(matrices["R0_rect"])) < 1e-6:
        raise FormatError(f"{path}: line {found['R0_rect'][1]}: R0_rect is singular")
    if abs(np.linalg.det(matrices["Tr_velo_to_cam"])) < 1e-6:
        raise FormatError(f"{path}: line {found['Tr_velo_to_cam'][1]}: Tr_velo_to_cam is singular")
    return KittiCalib(**matrices, path=path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------- labels

_LABEL_FIELDS = (
    "type", "truncated", "occluded", "alpha", "bbox_left", "bbox_top", "bbox_right", "bbox_bottom",
    "height", "width", "length", "x", "y", "z", "rotation_y", "score",
)  # fmt: skip
DONT_CARE = "DontCare"


@dataclass(frozen=True)
class KittiLabels:
    """The objects of one `label_2` file, as columns (one row per line, in file order).

    Attributes:
        types: `str ndarray[N]` class names (`Car`, `Pedestrian`, ..., `DontCare`).
        truncated: `float32 [N]` 0 (fully visible) to 1 (leaving the image).
        occluded: `int64 [N]` 0 visible, 1 partly, 2 largely occluded, 3 unknown (-1 DontCare).
        alpha: `float32 [N]` observation angle, radians.
        bbox2d: `float32 [N, 4]` image box `x1, y1, x2, y2` in pixels (image 2).
        dims_hwl: `float32 [N, 3]` height, width, length in metres (KITTI's order).
        location: `float32 [N, 3]` bottom centre in rectified camera coordinates, metres.
        rotation_y: `float32 [N]` yaw about the camera y axis (= `CameraBoxes3D` yaw).
        score: `float32 [N]` detection score (16th field), NaN where absent.
        line_numbers: `int64 [N]` line of each object in the file (1-based).
        path: the file read, if any.
    """

    types: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox2d: np.ndarray
    dims_hwl: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray
    line_numbers: np.ndarray
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.types.shape[0])

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> KittiLabels:
        """The records selected by an int, slice, index array or boolean mask (always `KittiLabels`)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return replace(
            self,
            **{f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "path"},
        )

    @property
    def dont_care(self) -> np.ndarray:
        """`bool [N]`: True for `DontCare` regions (image areas without 3D labels)."""
        return self.types == DONT_CARE

    @property
    def dims_lhw(self) -> np.ndarray:
        """`float32 [N, 3]`: length, height, width: the `CameraBoxes3D` size columns."""
        return self.dims_hwl[:, [2, 0, 1]]

    def objects(self) -> KittiLabels:
        """The records that are not `DontCare` (the ones with 3D boxes), in file order."""
        return self[~self.dont_care]

    def to_camera_boxes(self) -> CameraBoxes3D:
        """`CameraBoxes3D` of the non-`DontCare` records (aligned with `objects()`):
        rows `x, y, z, l, h, w, rotation_y`."""
        from pc3d.structures import CameraBoxes3D

        objects = self.objects()
        tensor = np.concatenate([objects.location, objects.dims_lhw, objects.rotation_y[:, None]], axis=1)
        return CameraBoxes3D(tensor.astype(np.float32).reshape(-1, 7))

    def to_lidar_boxes(self, calib: KittiCalib) -> LiDARBoxes3D:
        """`LiDARBoxes3D` of the non-`DontCare` records, converted with `calib.cam_to_lidar`."""
        return camera_to_lidar_boxes(self.to_camera_boxes(), calib)


def read_kitti_labels(path: str | os.PathLike[str]) -> KittiLabels:
    """Parse a KITTI `label_2/*.txt` file (15 fields per line, 16 with a score).

    `DontCare` lines are kept (see `KittiLabels.dont_care`) with their placeholder sizes.
    An empty file gives zero records.

    Raises:
        FormatError: a wrong number of fields, a non-numeric value or a negative size on an
            object that is not `DontCare`, naming the file, the line and the field.
    """
    path = Path(path)
    rows: list[list[float]] = []
    types: list[str] = []
    line_numbers: list[int] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) not in (15, 16):
            raise FormatError(
                f"{path}: line {line_no} has {len(tokens)} fields, expected 15 (or 16 with a score)"
            )
        numbers = []
        for name, token in zip(_LABEL_FIELDS[1:], tokens[1:], strict=False):
            try:
                value = float(token)
            except ValueError as err:
                raise FormatError(f"{path}: line {line_no}: field '{name}' value {token!r} is not a number") from err
            if not math.isfinite(value):
                raise FormatError(f"{path}: line {line_no}: field '{name}' is {token}")
            numbers.append(value)
        if len(numbers) == 14:
            numbers.append(math.nan)
        if tokens[0] != DONT_CARE:
            for k, name in ((7, "height"), (8, "width"), (9, "length")):
                if numbers[k] < 0:
                    raise FormatError(
                        f"{path}: line {line_no}: {tokens[0]} has negative {name} {numbers[k]} "
                        "(only DontCare lines may hold the -1 placeholders)"
                    )
        types.append(tokens[0])
        rows.append(numbers)
        line_numbers.append(line_no)
    values = np.array(rows, dtype=np.float64).reshape(-1, 15)
    return KittiLabels(
        types=np.array(types, dtype=str).reshape(-1),
        truncated=values[:, 0].astype(np.float32),
        occluded=values[:, 1].astype(np.int64),
        alpha=values[:, 2].astype(np.float32),
        bbox2d=values[:, 3:7].astype(np.float32),
        dims_hwl=values[:, 7:10].astype(np.float32),
        location=values[:, 10:13].astype(np.float32),
        rotation_y=values[:, 13].astype(np.float32),
        score=values[:, 14].astype(np.float32),
        line_numbers=np.array(line_numbers, dtype=np.int64),
        path=path,
    )


def format_kitti_labels(labels: KittiLabels) -> str:
    """The text of a `label_2` file holding `labels` (a score column only where it is not NaN)."""
    lines = []
    for i in range(len(labels)):  # one line per object: output formatting, not a hot path
        values = [
            labels.truncated[i], labels.occluded[i], labels.alpha[i], *labels.bbox2d[i],
            *labels.dims_hwl[i], *labels.location[i], labels.rotation_y[i],
        ]  # fmt: skip
        text = [str(labels.types[i]), f"{values[0]:.2f}", str(int(values[1]))]
        text += [f"{v:.2f}" for v in values[2:]]
        if not math.isnan(float(labels.score[i])):
            text.append(f"{float(labels.score[i]):.4f}")
        lines.append(" ".join(text))
    return "".join(line + "\n" for line in lines)


def write_kitti_labels(path: str | os.PathLike[str], labels: KittiLabels) -> Path:
    """Write `labels` as a KITTI `label_2` file (values rounded to 2 decimals, as KITTI's)."""
    path = Path(path)
    atomic_write_bytes(path, format_kitti_labels(labels).encode("utf-8"))
    return path


# ----------------------------------------------------------------------- frame conversions


def camera_to_lidar_boxes(boxes: CameraBoxes3D, calib: KittiCalib) -> LiDARBoxes3D:
    """Camera (rectified) boxes -> LiDAR boxes with the frame's calibration."""
    return boxes.convert_to("lidar", calib.cam_to_lidar)


def lidar_to_camera_boxes(boxes: LiDARBoxes3D, calib: KittiCalib) -> CameraBoxes3D:
    """LiDAR boxes -> rectified camera boxes with the frame's calibration."""
    return boxes.convert_to("camera", calib.lidar_to_cam)


# ------------------------------------------------------------------------------- projection


@dataclass(frozen=True)
class ImageProjection:
    """3D boxes projected onto an image.

    Attributes:
        corners: `float64 [N, 8, 2]` pixel coordinates of the box corners (same corner order as
            `Boxes3D.corners`); NaN for corners closer than the near plane (behind the camera).
        depth: `float64 [N, 8]` depth of each corner along the camera axis (P's third row).
        boxes2d: `float64 [N, 4]` `x1, y1, x2, y2` enclosing the visible part of each box
            (clipped at the near plane, and to the image when its size was given); NaN rows for
            boxes not visible at all.
        visible: `bool [N]` some part of the box is in front of the camera (and inside the image
            when its size was given).
    """

    corners: np.ndarray
    depth: np.ndarray
    boxes2d: np.ndarray
    visible: np.ndarray


def _as_projection_matrix(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    proj = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=np.float64)
    if proj.shape == (4, 4):
        return proj[:3]
    if proj.shape == (3, 4):
        return proj
    if proj.shape == (3, 3):
        return np.concatenate([proj, np.zeros((3, 1))], axis=1)
    raise ShapeError(f"a projection matrix must be 3x3, 3x4 or 4x4, got shape {proj.shape}")


def project_points_to_image(
    points: np.ndarray | torch.Tensor, cam_to_img: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Project camera-frame points `[..., 3]` with `P` (3x3, 3x4 or 4x4).

    Returns:
        `(uv [..., 2], depth [...])` as float64; `uv` is NaN where `depth <= 0` (behind the
        camera a perspective projection has no meaning).
    """
    xyz = np.asarray(points.detach().cpu() if hasattr(points, "detach") else points, dtype=np.float64)
    if xyz.shape[-1] != 3:
        raise ShapeError(f"points must have shape [..., 3], got {xyz.shape}")
    proj = _as_projection_matrix(cam_to_img)
    homo = xyz @ proj[:, :3].T + proj[:, 3]
    depth = homo[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = homo[..., :2] / depth[..., None]
    uv[depth <= 0] = np.nan
    return uv, depth


def project_boxes_to_image(
    boxes: Boxes3D | np.ndarray | torch.Tensor,
    cam_to_img: np.ndarray | torch.Tensor,
    image_size: tuple[int, int] | None = None,
    near: float = 0.1,
) -> ImageProjection:
    """Project camera-frame 3D boxes onto the image with `P` (e.g. `calib.cam_to_img`).

    Args:
        boxes: `CameraBoxes3D` (rectified camera frame), or their corners `[N, 8, 3]`.
        cam_to_img: projection matrix, 3x4 or 4x4 (KITTI's `P2`).
        image_size: `(width, height)`; when given, 2D boxes are clipped to `[0, width] x
            [0, height]` and boxes wholly outside are not visible.
        near: distance (metres, along the camera axis) of the near plane.

    Corners behind the near plane have no meaningful projection: they get NaN pixels, and the
    2D box encloses the part of the 3D box in front of the plane (its corners there plus the
    points where its edges cross the plane), which is exact for a box partly behind the camera.
    """
    from pc3d.structures import Boxes3D, CameraBoxes3D

    if isinstance(boxes, Boxes3D):
        if not isinstance(boxes, CameraBoxes3D):
            raise FormatError(
                f"project_boxes_to_image needs camera-frame boxes, got {type(boxes).__name__}; "
                "convert them with boxes.convert_to('camera', calib.lidar_to_cam) first"
            )
        corners = boxes.corners.detach().cpu().numpy().astype(np.float64)
    else:
        corners = np.asarray(boxes.detach().cpu() if hasattr(boxes, "detach") else boxes, dtype=np.float64)
        if corners.ndim != 3 or corners.shape[1:] != (8, 3):
            raise ShapeError(f"box corners must have shape [N, 8, 3], got {corners.shape}")
    proj = _as_projection_matrix(cam_to_img)
    num = corners.shape[0]
    uv, depth = project_points_to_image(corners, proj)
    in_front = depth >= near
    uv = np.where(in_front[..., None], uv, np.nan)

    # Points where segments between corners cross the near plane. All 28 corner pairs are used,
    # so the result does not depend on the corner order; crossings of face or body diagonals
    # lie inside the clipped box and never widen the 2D box.
    i, j = np.triu_indices(8, k=1)
    d_i, d_j = depth[:, i], depth[:, j]
    crosses = (d_i - near) * (d_j - near) < 0  # [N, 28]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, (near - d_i) / (d_j - d_i), 0.0)
    crossing = corners[:, i] + t[..., None] * (corners[:, j] - corners[:, i])  # [N, 28, 3]
    crossing_uv, _ = project_points_to_image(crossing, proj)

    candidates = np.concatenate([uv, crossing_uv], axis=1)  # [N, 36, 2]
    valid = np.concatenate([in_front, crosses], axis=1)
    visible = valid.any(axis=1)
    low = np.where(valid[..., None], candidates, np.inf).min(axis=1) if num else np.zeros((0, 2))
    high = np.where(valid[..., None], candidates, -np.inf).max(axis=1) if num else np.zeros((0, 2))
    boxes2d = np.concatenate([low, high], axis=1)
    if image_size is not None:
        width, height = image_size
        boxes2d = np.clip(boxes2d, 0.0, [width, height, width, height])
        visible &= (boxes2d[:, 2] > boxes2d[:, 0]) & (boxes2d[:, 3] > boxes2d[:, 1])
    boxes2d[~visible] = np.nan
    return ImageProjection(corners=uv, depth=depth, boxes2d=boxes2d, visible=visible)


# ------------------------------------------------------------------------------------ frames


def read_png_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """`(width, height)` of a PNG image, from its header (no image library needed)."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise FormatError(f"{path}: not a PNG image")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


@dataclass(frozen=True)
class KittiFrame:
    """One KITTI `training` (or `testing`) frame: its files and what they hold.

    Attributes:
        frame_id: e.g. `"000001"`.
        root: the `training` folder.
        points: the Velodyne scan (`x, y, z, intensity`).
        calib: its calibration.
        labels: its labels, or None when the folder has no `label_2` file for it.
        image_path: `image_2/<frame>.png` if it exists, else None.
    """

    frame_id: str
    root: Path
    points: PointCloudData
    calib: KittiCalib
    labels: KittiLabels | None
    image_path: Path | None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(width, height)` of the frame's image when it is there."""
        return read_png_size(self.image_path) if self.image_path is not None else None


def load_kitti_frame(root: str | os.PathLike[str], frame_id: str | int) -> KittiFrame:
    """Read `velodyne/`, `calib/`, `label_2/` (and find `image_2/`) for one frame of `root`.

    `frame_id` may be an int (`1` -> `"000001"`) or the file stem.
    """
    root = Path(root)
    stem = f"{frame_id:06d}" if isinstance(frame_id, int) else str(frame_id)
    if not root.is_dir():
        raise FileNotFoundError(f"KITTI folder {root} does not exist")
    velodyne = root / "velodyne" / f"{stem}.bin"
    calib_path = root / "calib" / f"{stem}.txt"
    for needed in (velodyne, calib_path):
        if not needed.is_file():
            available = sorted(p.stem for p in (root / "velodyne").glob("*.bin"))
            raise FileNotFoundError(
                f"frame {stem}: {needed} does not exist (frames with a scan in {root}: "
                f"{', '.join(available) or 'none'})"
            )
    label_path = root / "label_2" / f"{stem}.txt"
    image_path = root / "image_2" / f"{stem}.png"
    return KittiFrame(
        frame_id=stem,
        root=root,
        points=read_point_file(velodyne, num_features=4),
        calib=read_kitti_calib(calib_path),
        labels=read_kitti_labels(label_path) if label_path.is_file() else None,
        image_path=image_path if image_path.is_file() else None,
    )
