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

The kernels take torch tensors or numpy arrays and return the kind they were given, computed the
same way (this module imports torch only for tensors: the command line converts files on numpy).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.angles import limit_period
from pc3d.structures.box_mode import BoxMode

if TYPE_CHECKING:
    from torch import Tensor

# A matrix taking one system's coordinates to another's: 3x3, 3x4 or 4x4, any array-like.
RtMat: TypeAlias = "Tensor | np.ndarray | Sequence[Sequence[float]] | None"
# Boxes or points: a tensor, or a numpy array (what the kernels return is of the same kind).
Array = TypeVar("Array", "Tensor", np.ndarray)

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


def _torch_or_none() -> ModuleType | None:
    """Torch when something imported it already (a tensor exists only then), else None."""
    return sys.modules.get("torch")


def _is_tensor(data: object) -> bool:
    torch_module = _torch_or_none()
    return torch_module is not None and isinstance(data, torch_module.Tensor)


def _namespace(data: object) -> Any:
    """The array module of `data`: torch for a tensor, numpy otherwise."""
    return _torch_or_none() if _is_tensor(data) else np


def _copy(data: Any) -> Any:
    return data.clone() if _is_tensor(data) else data.copy()


def default_rt_mat(src: BoxMode | str, dst: BoxMode | str) -> Tensor:
    """The default `Tensor[3, 3]` taking `src` coordinates to `dst` coordinates (identity if equal).

    Args:
        src: the source system.
        dst: the target system.
    """
    import torch

    return torch.from_numpy(_default_rt(BoxMode.parse(src), BoxMode.parse(dst))).float()


def _default_rt(src: BoxMode, dst: BoxMode) -> np.ndarray:
    return np.eye(3) if src is dst else np.array(_DEFAULT_RT[(src, dst)], dtype=np.float64)


def check_rt_mat(rt_mat: object, like: Array) -> Array:
    """`rt_mat` as an array of `like`'s kind, dtype and device.

    Args:
        rt_mat: a 3x3, 3x4 or 4x4 matrix (tensor, array or lists).
        like: the data it will transform.

    Raises:
        ShapeError: another shape.
        FormatError: non-numeric, NaN or infinite entries.
    """
    if _is_tensor(rt_mat):
        values = rt_mat.detach().cpu().double().numpy()  # type: ignore[attr-defined]
    else:
        try:
            values = np.asarray(rt_mat, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise FormatError(f"rt_mat must be a numeric matrix: {err}") from None
    if tuple(values.shape) not in _VALID_RT_SHAPES:
        raise ShapeError(f"rt_mat must be 3x3, 3x4 or 4x4, got shape {tuple(values.shape)}")
    if not np.isfinite(values).all():
        raise FormatError("rt_mat holds NaN or infinite values")
    return _like(values, like)


def _like(values: np.ndarray, like: Any) -> Any:
    """float64 `values` as an array of `like`'s kind, dtype and device."""
    if _is_tensor(like):
        torch_module = _torch_or_none()
        return torch_module.as_tensor(values, dtype=like.dtype, device=like.device)  # type: ignore[union-attr]
    return values.astype(like.dtype, copy=False)


def _resolve(src: BoxMode, dst: BoxMode, rt_mat: object, like: Array) -> Array:
    if rt_mat is None:
        return _like(_default_rt(src, dst), like)
    return check_rt_mat(rt_mat, like)


def transform_xyz(xyz: Array, rt_mat: Array) -> Array:
    """Apply a 3x3/3x4/4x4 `rt_mat` to row vectors (`R @ p + t`).

    Args:
        xyz: `[N, 3]` tensor or array.
        rt_mat: a checked matrix of the same kind (`check_rt_mat`).

    Returns:
        `[N, 3]`, of `xyz`'s kind.
    """
    rotated = xyz @ rt_mat[:3, :3].T
    return rotated + rt_mat[:3, 3] if rt_mat.shape[1] == 4 else rotated


def turn_yaw(yaw: Array, src: BoxMode, dst: BoxMode, rotation: Array) -> Array:
    """Yaw in `dst` of boxes with `yaw` in `src` after `rotation` (`Tensor[3, 3]`, src -> dst).

    The heading (the box's +x_size direction) is `(cos, sin, 0)` in LiDAR/Depth and
    `(cos, 0, -sin)` in Camera, whose yaw decreases from +x toward +z. Its image under
    `rotation` is read back as an angle in `dst`'s BEV plane and wrapped into `[-pi, pi)`.

    Args:
        yaw: `[N]` yaws in `src` (tensor or array).
        src: the source system.
        dst: the target system.
        rotation: the rotation part of the conversion matrix, of `yaw`'s kind.

    Returns:
        `[N]` yaws in `dst`, of `yaw`'s kind.
    """
    xp = _namespace(yaw)
    cos, sin = xp.cos(yaw), xp.sin(yaw)
    # rotation @ heading, for the two components in dst's BEV plane only.
    sin_column = rotation[:, 1] if src.z_up else -rotation[:, 2]
    first, second = (0, 2) if dst is _C else (0, 1)
    along_first = cos * rotation[first, 0] + sin * sin_column[first]
    along_second = cos * rotation[second, 0] + sin * sin_column[second]
    turned = xp.arctan2(-along_second if dst is _C else along_second, along_first)
    return limit_period(turned, 0.5, 2 * math.pi)


# Same keywords as pc3d.structures.conversion.convert_boxes on purpose: that public call checks and
# unwraps any box input, then hands the tensor to this kernel.
def convert_box_tensor(
    boxes: Array,
    src: BoxMode | str,
    dst: BoxMode | str,
    rt_mat: object = None,
    with_yaw: bool = True,
    correct_yaw: bool = True,
) -> Array:
    """Boxes `[N, 7+C]` in `src` as new boxes in `dst` (a tensor for a tensor, an array for an array).

    Args:
        boxes: `[N, 7+C]` floating tensor or numpy array in `src`'s layout.
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
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ShapeError(f"boxes must have shape (N, 7+C), got {tuple(boxes.shape)}")
    if src is dst and rt_mat is None:
        return _copy(boxes)
    xp = _namespace(boxes)
    mat = _resolve(src, dst, rt_mat, boxes)
    sizes = _Z_UP_TO_FROM_CAMERA if (src is _C) != (dst is _C) else _SAME_SIZES
    out = _copy(boxes)
    out[:, :3] = transform_xyz(boxes[:, :3], mat)
    for dst_col, src_col in zip((3, 4, 5), sizes):
        out[:, dst_col] = boxes[:, src_col]
    heading_rotation = mat[:3, :3] if correct_yaw else _resolve(src, dst, None, boxes)
    yaw = turn_yaw(boxes[:, 6], src, dst, heading_rotation)
    if with_yaw:
        out[:, 6] = yaw
    else:
        bev_sizes = [3, 5] if dst is _C else [3, 4]
        turned = (xp.abs(xp.sin(yaw)) > xp.abs(xp.cos(yaw)))[:, None]
        out[:, bev_sizes] = xp.where(turned, out[:, bev_sizes[::-1]], out[:, bev_sizes])
        out[:, 6] = 0
    return out


def z_up_tensor(tensor: Array, mode: BoxMode, kind: str = "boxes") -> Array:
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
    points: Array, src: BoxMode | str, dst: BoxMode | str, rt_mat: object = None
) -> Array:
    """Points `[N, 3+C]` in `src` as new points in `dst` (a tensor for a tensor, an array for an
    array); extra columns carried unchanged.

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
    if points.ndim != 2 or points.shape[1] < 3:
        raise ShapeError(f"points must have shape (N, 3+C), got {tuple(points.shape)}")
    if src is dst and rt_mat is None:
        return _copy(points)
    mat = _resolve(src, dst, rt_mat, points)
    out = _copy(points)
    out[:, :3] = transform_xyz(points[:, :3], mat)
    return out
