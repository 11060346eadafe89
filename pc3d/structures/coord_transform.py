"""Tensor-level conversion of boxes and points between the LiDAR, Camera and Depth systems.

A conversion from `src` to `dst` is given by `rt_mat` (3x3 rotation, 3x4 or 4x4 rigid transform
taking `src` coordinates to `dst` coordinates) or, when it is None, by the default axis
permutation of MMDetection3D 1.x:

    lidar -> camera: (x, y, z) -> (-y, -z, x)      camera -> lidar: (x, y, z) -> (z, -x, -y)
    depth -> camera: (x, y, z) -> (x, -z, y)       camera -> depth: (x, y, z) -> (x, z, -y)
    lidar -> depth:  (x, y, z) -> (-y, x, z)       depth -> lidar:  (x, y, z) -> (y, -x, z)

Box centres go through the matrix. Sizes are permuted per pair of systems (LiDAR/Depth
`x_size, y_size, z_size` = length, width, height; Camera = length, height, width). The yaw goes
through the matrix as a heading vector (MMDetection3D's `correct_yaw=True` path), so a real
calibration with a small rotation bends every heading by exactly that rotation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.utils import limit_period

# A matrix taking one system's coordinates to another's: 3x3, 3x4 or 4x4, any array-like.
RtMat = Tensor | np.ndarray | Sequence[Sequence[float]] | None

_L, _C, _D = BoxMode.LIDAR, BoxMode.CAMERA, BoxMode.DEPTH

# Rows map src coordinates to dst coordinates: dst = M @ src.
_DEFAULT_RT: dict[tuple[BoxMode, BoxMode], tuple[tuple[int, ...], ...]] = {
    (_L, _C): ((0, -1, 0), (0, 0, -1), (1, 0, 0)),
    (_C, _L): ((0, 0, 1), (-1, 0, 0), (0, -1, 0)),
    (_D, _C): ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    (_C, _D): ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    (_L, _D): ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    (_D, _L): ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),
}

# Size columns (3, 4, 5) of the source in the order the destination stores them.
_Z_UP_TO_FROM_CAMERA = (3, 5, 4)
_SAME_SIZES = (3, 4, 5)

_VALID_RT_SHAPES = ((3, 3), (3, 4), (4, 4))


def default_rt_mat(src: BoxMode | str, dst: BoxMode | str) -> Tensor:
    """The default `Tensor[3, 3]` taking `src` coordinates to `dst` coordinates (identity if equal).

    Args:
        src: the source system.
        dst: the target system.
    """
    src, dst = BoxMode.parse(src), BoxMode.parse(dst)
    if src is dst:
        return torch.eye(3)
    return torch.tensor(_DEFAULT_RT[(src, dst)], dtype=torch.float32)


def check_rt_mat(rt_mat: object, device: torch.device, dtype: torch.dtype) -> Tensor:
    """`rt_mat` as a tensor on `device` with `dtype`.

    Args:
        rt_mat: a 3x3, 3x4 or 4x4 matrix (tensor, array or lists).
        device: the device of the data it will transform.
        dtype: their dtype.

    Raises:
        ShapeError: another shape.
        FormatError: non-numeric, NaN or infinite entries.
    """
    if isinstance(rt_mat, Tensor):
        mat = rt_mat.detach().to(device=device, dtype=dtype)
    else:
        try:
            mat = torch.as_tensor(np.asarray(rt_mat, dtype=np.float64), dtype=dtype, device=device)
        except (TypeError, ValueError) as err:
            raise FormatError(f"rt_mat must be a numeric matrix: {err}") from None
    if tuple(mat.shape) not in _VALID_RT_SHAPES:
        raise ShapeError(f"rt_mat must be 3x3, 3x4 or 4x4, got shape {tuple(mat.shape)}")
    if not bool(torch.isfinite(mat).all()):
        raise FormatError("rt_mat holds NaN or infinite values")
    return mat


def _resolve(src: BoxMode, dst: BoxMode, rt_mat: object, like: Tensor) -> Tensor:
    if rt_mat is None:
        return default_rt_mat(src, dst).to(device=like.device, dtype=like.dtype)
    return check_rt_mat(rt_mat, like.device, like.dtype)


def transform_xyz(xyz: Tensor, rt_mat: Tensor) -> Tensor:
    """Apply a 3x3/3x4/4x4 `rt_mat` to row vectors (`R @ p + t`).

    Args:
        xyz: `Tensor[N, 3]`.
        rt_mat: a checked matrix (`check_rt_mat`).

    Returns:
        `Tensor[N, 3]`.
    """
    if rt_mat.shape[1] == 4:
        return torch.addmm(rt_mat[:3, 3], xyz, rt_mat[:3, :3].T)
    return xyz @ rt_mat[:3, :3].T


def turn_yaw(yaw: Tensor, src: BoxMode, dst: BoxMode, rotation: Tensor) -> Tensor:
    """Yaw in `dst` of boxes with `yaw` in `src` after `rotation` (`Tensor[3, 3]`, src -> dst).

    The heading (the box's +x_size direction) is `(cos, sin, 0)` in LiDAR/Depth and
    `(cos, 0, -sin)` in Camera, whose yaw decreases from +x toward +z. Its image under
    `rotation` is read back as an angle in `dst`'s BEV plane and wrapped into `[-pi, pi)`.

    Args:
        yaw: `Tensor[N]` yaws in `src`.
        src: the source system.
        dst: the target system.
        rotation: the rotation part of the conversion matrix.

    Returns:
        `Tensor[N]` yaws in `dst`.
    """
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    # rotation @ heading, for the two components in dst's BEV plane only.
    sin_column = rotation[:, 1] if src.z_up else -rotation[:, 2]
    first, second = (0, 2) if dst is _C else (0, 1)
    along_first = cos * rotation[first, 0] + sin * sin_column[first]
    along_second = cos * rotation[second, 0] + sin * sin_column[second]
    turned = torch.atan2(-along_second if dst is _C else along_second, along_first)
    return limit_period(turned, 0.5, 2 * math.pi)


# Same keywords as pc3d.structures.conversion.convert_boxes on purpose: that public call checks and
# unwraps any box input, then hands the tensor to this kernel.
def convert_box_tensor(
    boxes: Tensor,
    src: BoxMode | str,
    dst: BoxMode | str,
    rt_mat: object = None,
    with_yaw: bool = True,
    correct_yaw: bool = True,
) -> Tensor:
    """Boxes `Tensor[N, 7+C]` in `src` as a new `Tensor[N, 7+C]` in `dst`.

    Args:
        boxes: `Tensor[N, 7+C]` in `src`'s layout.
        src: the boxes' system.
        dst: the wanted system.
        rt_mat: 3x3, 3x4 or 4x4 matrix taking `src` to `dst` coordinates; None for the default
            axis permutation.
        with_yaw: False for axis-aligned boxes (yaw 0): they stay axis-aligned in `dst`, their
            two BEV sizes swapped when the conversion turns their x_size axis by about 90
            degrees.
        correct_yaw: True turns the heading by `rt_mat`'s rotation; False by the default
            permutation only (MMDetection3D's closed forms, its default), ignoring the rotation
            a real calibration adds.

    Returns:
        The converted boxes; columns beyond the yaw (velocity, scores) are carried unchanged,
        as MMDetection3D does.
    """
    src, dst = BoxMode.parse(src), BoxMode.parse(dst)
    if boxes.dim() != 2 or boxes.shape[1] < 7:
        raise ShapeError(f"boxes must have shape (N, 7+C), got {tuple(boxes.shape)}")
    if src is dst and rt_mat is None:
        return boxes.clone()
    mat = _resolve(src, dst, rt_mat, boxes)
    sizes = _Z_UP_TO_FROM_CAMERA if (src is _C) != (dst is _C) else _SAME_SIZES
    out = boxes.clone()
    out[:, :3] = transform_xyz(boxes[:, :3], mat)
    for dst_col, src_col in zip((3, 4, 5), sizes):
        out[:, dst_col] = boxes[:, src_col]
    heading_rotation = mat[:3, :3] if correct_yaw else _resolve(src, dst, None, boxes)
    yaw = turn_yaw(boxes[:, 6], src, dst, heading_rotation)
    if with_yaw:
        out[:, 6] = yaw
    else:
        bev_sizes = [3, 5] if dst is _C else [3, 4]
        turned = (torch.sin(yaw).abs() > torch.cos(yaw).abs())[:, None]
        out[:, bev_sizes] = torch.where(turned, out[:, bev_sizes[::-1]], out[:, bev_sizes])
        out[:, 6] = 0
    return out


def z_up_tensor(tensor: Tensor, mode: BoxMode, kind: str = "boxes") -> Tensor:
    """Boxes or points of system `mode` in a z-up layout, for the `pc3d.ops` kernels.

    The one place where Camera data become z-up. LiDAR and Depth data are z-up already and
    come back as they are (no copy). Camera data go through the default camera -> LiDAR
    permutation (x, y, z) -> (z, -x, -y): an exact axis swap, so containment and IoU are the
    same numbers as in camera axes.

    Args:
        tensor: boxes `Tensor[N, 7+C]` or points `Tensor[N, 3+C]` in `mode`.
        mode: their system.
        kind: `"boxes"` or `"points"`.

    Returns:
        The z-up boxes (LiDAR layout for Camera input) or points.
    """
    if mode.z_up:
        return tensor
    convert = convert_box_tensor if kind == "boxes" else convert_point_tensor
    return convert(tensor, mode, BoxMode.LIDAR)


def convert_point_tensor(
    points: Tensor, src: BoxMode | str, dst: BoxMode | str, rt_mat: object = None
) -> Tensor:
    """Points `Tensor[N, 3+C]` in `src` as a new tensor in `dst`; extra columns carried unchanged.

    Args:
        points: the points.
        src: their system.
        dst: the target system.
        rt_mat: matrix taking `src` to `dst` coordinates; None for the default permutation.

    Raises:
        ShapeError: points not `(N, 3+C)` or a bad `rt_mat` shape.
    """
    # Same steps as convert_box_tensor's opening, kept in line: points need only the matrix, boxes
    # also their sizes and yaw, and a helper for four lines would hide where each returns.
    src, dst = BoxMode.parse(src), BoxMode.parse(dst)
    if points.dim() != 2 or points.shape[1] < 3:
        raise ShapeError(f"points must have shape (N, 3+C), got {tuple(points.shape)}")
    if src is dst and rt_mat is None:
        return points.clone()
    mat = _resolve(src, dst, rt_mat, points)
    out = points.clone()
    out[:, :3] = transform_xyz(points[:, :3], mat)
    return out
