"""Small helpers shared by boxes and points: periodic angles, rotations about one axis, and the
checks that turn arbitrary array-likes into a validated float32 tensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError

ArrayT = TypeVar("ArrayT", Tensor, np.ndarray)


def limit_period(val: ArrayT, offset: float = 0.5, period: float = math.pi) -> ArrayT:
    """Wrap `val` into `[-offset * period, (1 - offset) * period)`.

    Works on tensors and numpy arrays alike (the result has the input's kind and dtype), as
    MMDetection3D's `limit_period` does: `val - floor(val / period + offset) * period`.
    """
    floor = torch.floor if isinstance(val, Tensor) else np.floor
    return val - floor(val / period + offset) * period


def rotation_matrix_t(angles: Tensor, axis: int) -> Tensor:
    """Transposed rotation matrices `Tensor[K, 3, 3]` for right-multiplying row vectors.

    `points @ R_t` rotates `points` by `angles` right-handedly about `axis` (counter-clockwise
    seen from the axis' positive end), MMDetection3D's `rotation_3d_in_axis` convention. About
    the camera's y axis, which points down, a positive angle turns +x toward -z: clockwise seen
    from above, and an increase of the camera yaw, just as a positive angle about LiDAR's +z is
    counter-clockwise seen from above and increases the LiDAR yaw.

    Args:
        angles: `Tensor[K]` in radians.
        axis: 0, 1 or 2.
    """
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    if axis == 2:
        rows = [[cos, sin, zero], [-sin, cos, zero], [zero, zero, one]]
    elif axis == 1:
        rows = [[cos, zero, -sin], [zero, one, zero], [sin, zero, cos]]
    elif axis == 0:
        rows = [[one, zero, zero], [zero, cos, sin], [zero, -sin, cos]]
    else:
        raise ValueError(f"rotation axis must be 0, 1 or 2, got {axis}")
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def as_float_tensor(
    data: object, what: str, device: torch.device | str | None = None, copy: bool = False
) -> Tensor:
    """`data` (tensor, numpy array or nested sequence) as a float32 tensor.

    Tensors keep their device and autograd history (box losses take gradients through
    `corners`) unless `device` is given; anything else lands on `device` or the CPU. With
    `copy=True` the result never shares memory with `data`. Raises `FormatError` naming `what`
    when the data is not numeric.
    """
    if isinstance(data, Tensor):
        if data.is_complex():
            raise FormatError(f"{what} must be real numbers, got a complex tensor")
        return data.to(device=device or data.device, dtype=torch.float32, copy=copy)
    try:
        array = np.array(data, dtype=np.float32, copy=copy or None)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{what} must be numeric and rectangular: {err}") from None
    return torch.from_numpy(array).to(device or "cpu")


def first_bad_row(mask: Tensor) -> int:
    """Index of the first row of `BoolTensor[N, ...]` holding a True anywhere."""
    rows = mask.reshape(mask.shape[0], -1).any(dim=1)
    return int(torch.nonzero(rows)[0, 0])


def check_finite(tensor: Tensor, what: str, columns: Sequence[str]) -> None:
    """Raise `FormatError` naming the first row and column of `tensor` holding NaN or inf."""
    bad = ~torch.isfinite(tensor)
    if tensor.numel() and bool(bad.any()):
        row = first_bad_row(bad)
        col = int(torch.nonzero(bad[row])[0, 0])
        name = columns[col] if col < len(columns) else f"column {col}"
        raise FormatError(
            f"{what} row {row}, {name} (column {col}) is {tensor[row, col].item()}; "
            f"{int(bad.any(dim=1).sum())} row(s) hold NaN or infinite values"
        )


def as_angle_or_rotation(mat: object, device: torch.device, dtype: torch.dtype, what: str) -> Tensor:
    """A scalar angle or a 3x3 rotation matrix as a tensor on `device`; else `ShapeError`."""
    tensor = mat.to(device=device, dtype=dtype) if isinstance(mat, Tensor) else torch.as_tensor(
        np.asarray(mat, dtype=np.float64), dtype=dtype, device=device
    )
    if tensor.numel() != 1 and tuple(tensor.shape) != (3, 3):
        raise ShapeError(f"{what} must be a scalar angle or a 3x3 rotation matrix, got shape {tuple(tensor.shape)}")
    return tensor
