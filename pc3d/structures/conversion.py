"""`convert_boxes` and `convert_points`: conversions that return the kind they were given.

The math lives in `coord_transform`; this module only unwraps and re-wraps the inputs: a
`Boxes3D`/`BasePoints` comes back as the destination system's class, a tensor as a tensor on the
same device with the same floating dtype, a numpy array as a numpy array, a list as a list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.base_box3d import Boxes3D, box_class
from pc3d.structures.base_points import BasePoints
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.coord_transform import RtMat, convert_box_tensor, convert_point_tensor
from pc3d.structures.utils import as_float_tensor

T = TypeVar("T", Boxes3D, BasePoints, Tensor, np.ndarray, list)
Restore = Callable[[Tensor], Any]


def _check_source(obj: Boxes3D | BasePoints, src: BoxMode, what: str) -> None:
    if obj.mode is not src:
        raise FormatError(f"{what} are {type(obj).__name__} ({obj.mode.value}) but src is {src.value!r}")


def _as_work_tensor(data: object, what: str) -> tuple[Tensor, Restore]:
    """A floating tensor to compute on, and a function restoring the input's kind."""
    if isinstance(data, Tensor):
        dtype = data.dtype if data.is_floating_point() else torch.float32
        return data.to(dtype), lambda t: t
    if isinstance(data, np.ndarray):
        np_dtype = data.dtype if np.issubdtype(data.dtype, np.floating) else np.dtype(np.float32)
        work = torch.from_numpy(np.asarray(data, dtype=np.float64 if np_dtype == np.float64 else np.float32))
        return work, lambda t: t.cpu().numpy().astype(np_dtype, copy=False)
    if isinstance(data, (list, tuple)):
        single = len(data) > 0 and not isinstance(data[0], (list, tuple, np.ndarray, Tensor))
        work = as_float_tensor([data] if single else data, what)
        return work, (lambda t: t[0].tolist()) if single else (lambda t: t.tolist())
    raise FormatError(f"{what} must be a structure, Tensor, ndarray or list, got {type(data).__name__}")


def convert_boxes(
    boxes: T,
    src: BoxMode | str,
    dst: BoxMode | str,
    rt_mat: RtMat = None,
    with_yaw: bool = True,
    correct_yaw: bool = True,
) -> T:
    """Convert boxes from system `src` to system `dst` (MMDetection3D's `Box3DMode.convert`).

    Args:
        boxes: a `Boxes3D` (returned as `dst`'s class), or `[N, 7+C]` boxes as a Tensor (CPU or
            CUDA, dtype kept), an ndarray (returned as an ndarray) or lists (a single box as a
            flat list is returned flat).
        src: the boxes' system: `BoxMode` or one of `"lidar"`, `"camera"` (`"cam"`), `"depth"`.
        dst: the target system, likewise.
        rt_mat: 3x3, 3x4 or 4x4 matrix taking `src` coordinates to `dst` coordinates (e.g.
            `R0_rect @ Tr_velo_to_cam` for KITTI LiDAR -> camera); None for the default axis
            permutation. With `src == dst` and a matrix, the matrix is applied (e.g. ego motion).
        with_yaw: for raw boxes: False marks axis-aligned boxes (a structure knows its own).
        correct_yaw: turn the headings by `rt_mat`'s rotation (pc3d's default); False reads the
            yaw through the default permutation only (MMDetection3D's default).

    Returns:
        Boxes in `dst`: centres through the matrix, sizes permuted per system, yaw carried
        through the matrix as a heading vector, extra columns unchanged.

    Raises:
        FormatError: unknown mode, or a structure whose system is not `src`.
        ShapeError: boxes not `[N, 7+C]`, or `rt_mat` not 3x3/3x4/4x4.
    """
    src, dst = BoxMode.parse(src), BoxMode.parse(dst)
    if isinstance(boxes, Boxes3D):
        _check_source(boxes, src, "boxes")
        return boxes.convert_to(dst, rt_mat, correct_yaw=correct_yaw)
    work, restore = _as_work_tensor(boxes, "boxes")
    if work.dim() != 2 or work.shape[1] < 7:
        raise ShapeError(f"boxes must have shape (N, 7+C), got {tuple(work.shape)}")
    out: T = restore(convert_box_tensor(work, src, dst, rt_mat, with_yaw=with_yaw, correct_yaw=correct_yaw))
    return out


def convert_points(points: T, src: BoxMode | str, dst: BoxMode | str, rt_mat: RtMat = None) -> T:
    """Convert points `[N, 3+C]` from system `src` to system `dst` (see `convert_boxes`).

    Args:
        points: a `BasePoints` (returned as `dst`'s points class with the same attribute
            names), or a Tensor, ndarray or lists, returned as the same kind.
        src: the points' system.
        dst: the target system.
        rt_mat: matrix taking `src` to `dst` coordinates; None for the default permutation.

    Returns:
        Coordinates through the matrix; extra columns unchanged.

    Raises:
        FormatError: unknown mode, or a structure whose system is not `src`.
        ShapeError: points not `[N, 3+C]`, or `rt_mat` not 3x3/3x4/4x4.
    """
    # The steps of convert_boxes for points: structures convert themselves, the rest is unwrapped
    # and checked for its own width (3+C, not 7+C) and kernel.
    src, dst = BoxMode.parse(src), BoxMode.parse(dst)
    if isinstance(points, BasePoints):
        _check_source(points, src, "points")
        return points.convert_to(dst, rt_mat)
    work, restore = _as_work_tensor(points, "points")
    if work.dim() != 2 or work.shape[1] < 3:
        raise ShapeError(f"points must have shape (N, 3+C), got {tuple(work.shape)}")
    out: T = restore(convert_point_tensor(work, src, dst, rt_mat))
    return out


__all__ = ["box_class", "convert_boxes", "convert_points"]
