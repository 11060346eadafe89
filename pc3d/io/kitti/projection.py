"""Projection of camera-frame points and 3D boxes onto an image with a projection matrix
(KITTI's `P2`: rectified camera 0 -> left colour image), clipped at a near plane."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pc3d.errors import FormatError, ShapeError

if TYPE_CHECKING:
    import torch

    from pc3d.structures import Boxes3D

__all__ = ["ImageProjection", "project_boxes_to_image", "project_points_to_image"]


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


def _as_numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)


def _as_projection_matrix(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    proj = _as_numpy(matrix)
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

    Args:
        points: `[..., 3]` in the camera frame.
        cam_to_img: the projection matrix.

    Returns:
        `(uv [..., 2], depth [...])` as float64; `uv` is NaN where `depth <= 0` (behind the
        camera a perspective projection has no meaning).

    Raises:
        ShapeError: points not `[..., 3]` or a matrix of another shape.
    """
    xyz = _as_numpy(points)
    if xyz.shape[-1] != 3:
        raise ShapeError(f"points must have shape [..., 3], got {xyz.shape}")
    proj = _as_projection_matrix(cam_to_img)
    homo = xyz @ proj[:, :3].T + proj[:, 3]
    depth = homo[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = homo[..., :2] / depth[..., None]
    uv[depth <= 0] = np.nan
    return uv, depth


def _camera_corners(boxes: Boxes3D | np.ndarray | torch.Tensor) -> np.ndarray:
    """`float64 [N, 8, 3]` corners of camera boxes, or the corners given."""
    from pc3d.structures import Boxes3D, CameraBoxes3D

    if isinstance(boxes, Boxes3D):
        if not isinstance(boxes, CameraBoxes3D):
            raise FormatError(
                f"project_boxes_to_image needs camera-frame boxes, got {type(boxes).__name__}; "
                "convert them with boxes.convert_to('camera', calib.lidar_to_cam) first"
            )
        return boxes.corners.detach().cpu().numpy().astype(np.float64)
    corners = _as_numpy(boxes)
    if corners.ndim != 3 or corners.shape[1:] != (8, 3):
        raise ShapeError(f"box corners must have shape [N, 8, 3], got {corners.shape}")
    return corners


def project_boxes_to_image(
    boxes: Boxes3D | np.ndarray | torch.Tensor,
    cam_to_img: np.ndarray | torch.Tensor,
    image_size: tuple[int, int] | None = None,
    near: float = 0.1,
) -> ImageProjection:
    """Project camera-frame 3D boxes onto the image with `P` (e.g. `calib.cam_to_img`).

    Corners behind the near plane have no meaningful projection: they get NaN pixels, and the
    2D box encloses the part of the 3D box in front of the plane (its corners there plus the
    points where its edges cross the plane), which is exact for a box partly behind the camera.

    Args:
        boxes: `CameraBoxes3D` (rectified camera frame), or their corners `[N, 8, 3]`.
        cam_to_img: projection matrix, 3x4 or 4x4 (KITTI's `P2`).
        image_size: `(width, height)`; when given, 2D boxes are clipped to `[0, width] x
            [0, height]` and boxes wholly outside are not visible.
        near: distance (metres, along the camera axis) of the near plane.

    Returns:
        The projected corners, depths, enclosing 2D boxes and visibility.

    Raises:
        FormatError: boxes of another frame than the camera's.
        ShapeError: corners not `[N, 8, 3]` or a matrix of another shape.
    """
    corners = _camera_corners(boxes)
    proj = _as_projection_matrix(cam_to_img)
    num = corners.shape[0]
    uv, depth = project_points_to_image(corners, proj)
    in_front = depth >= near
    uv = np.where(in_front[..., None], uv, np.nan)
    crossing_uv, crosses = _near_plane_crossings(corners, depth, proj, near)

    candidates = np.concatenate([uv, crossing_uv], axis=1)  # [N, 36, 2]
    valid = np.concatenate([in_front, crosses], axis=1)
    visible = np.asarray(valid.any(axis=1))
    low = np.where(valid[..., None], candidates, np.inf).min(axis=1) if num else np.zeros((0, 2))
    high = np.where(valid[..., None], candidates, -np.inf).max(axis=1) if num else np.zeros((0, 2))
    boxes2d = np.concatenate([low, high], axis=1)
    if image_size is not None:
        width, height = image_size
        boxes2d = np.clip(boxes2d, 0.0, [width, height, width, height])
        visible &= (boxes2d[:, 2] > boxes2d[:, 0]) & (boxes2d[:, 3] > boxes2d[:, 1])
    boxes2d[~visible] = np.nan
    return ImageProjection(corners=uv, depth=depth, boxes2d=boxes2d, visible=visible)


def _near_plane_crossings(
    corners: np.ndarray, depth: np.ndarray, proj: np.ndarray, near: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels `[N, 28, 2]` of the points where the segments between corners cross the near
    plane, and `bool [N, 28]` which segments do.

    All 28 corner pairs are used, so the result does not depend on the corner order; crossings
    of face or body diagonals lie inside the clipped box and never widen the 2D box.
    """
    i, j = np.triu_indices(8, k=1)
    d_i, d_j = depth[:, i], depth[:, j]
    crosses = (d_i - near) * (d_j - near) < 0  # [N, 28]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, (near - d_i) / (d_j - d_i), 0.0)
    crossing = corners[:, i] + t[..., None] * (corners[:, j] - corners[:, i])  # [N, 28, 3]
    crossing_uv, _ = project_points_to_image(crossing, proj)
    return crossing_uv, crosses
