"""Small helpers shared by boxes and points (periodic angles are `pc3d.structures.angles`): rotations about one axis, row
indexing and ranges, and the conversion of array-likes into a float32 tensor.

Checks of values (NaN/inf, negative sizes) are `pc3d.ops.checks`' (one implementation for the
ops and the structures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError


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
    `copy=True` the result never shares memory with `data`.

    Args:
        data: the values.
        what: their name in messages.
        device: where the result goes (default: a tensor's own device, else the CPU).
        copy: never share memory with `data`.

    Raises:
        FormatError: non-numeric or ragged data, or a complex tensor (naming `what`).
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


def as_angle_or_rotation(mat: object, device: torch.device, dtype: torch.dtype, what: str) -> Tensor:
    """A scalar angle or a 3x3 rotation matrix as a tensor on `device`.

    Args:
        mat: an angle (number, 0-d or 1-element array) or a 3x3 matrix.
        device: the target device.
        dtype: the target dtype.
        what: its name in messages.

    Raises:
        ShapeError: neither one number nor a 3x3 matrix (the message names `what`).
        FormatError: a NaN or infinite value (it would turn every coordinate it touches into NaN).
    """
    tensor = (
        mat.to(device=device, dtype=dtype)
        if isinstance(mat, Tensor)
        else torch.as_tensor(np.asarray(mat, dtype=np.float64), dtype=dtype, device=device)
    )
    if tensor.numel() != 1 and tuple(tensor.shape) != (3, 3):
        raise ShapeError(
            f"{what} must be a scalar angle or a 3x3 rotation matrix, got shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()):
        raise FormatError(f"{what} must be finite, got {tensor.tolist()}")
    return tensor


def translation_vector(data: object, rows: int, device: torch.device) -> Tensor:
    """A translation of `rows` boxes or points: `[3]` (a `[1, 3]` is taken as `[3]`) or one
    offset per row, `[rows, 3]`, as float32 on `device`.

    Raises:
        ShapeError: any other shape.
        FormatError: non-numeric, or a NaN or infinite offset.
    """
    vec = as_float_tensor(data, "translation", device=device)
    if vec.dim() == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if tuple(vec.shape) not in ((3,), (rows, 3)):
        raise ShapeError(f"translation must have shape (3,) or ({rows}, 3), got {tuple(vec.shape)}")
    if not bool(torch.isfinite(vec).all()):
        bad = vec if vec.dim() == 1 else vec[~torch.isfinite(vec).all(dim=1)][0]
        raise FormatError(f"translation must be finite, got {bad.tolist()}")
    return vec


def scale_factor(value: object) -> float:
    """`value` as a scale factor of coordinates and sizes.

    Raises:
        FormatError: not a positive finite number.
    """
    try:
        factor = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        raise FormatError(f"scale factor must be a positive finite number, got {value!r}")
    return factor


RowIndex = int | np.integer | slice | range | list | Tensor | np.ndarray


def row_index(item: object, length: int) -> int | slice | Tensor:
    """Normalise a row index of a structure so that `tensor[index]` stays 2-D.

    Args:
        item: an int (negative counts from the end), a slice, a bool mask or an index
            tensor, array or list.
        length: the number of rows.

    Returns:
        A slice for an int (one row, kept 2-D), a tensor for arrays and lists, else `item`.

    Raises:
        ShapeError: a tuple (column selection would break the fixed column layout).
        IndexError: an int out of range.
    """
    if isinstance(item, tuple):
        raise ShapeError(f"structures are indexed by rows only, got {item!r}; use .tensor[...] for columns")
    if isinstance(item, (int, np.integer)):
        index = int(item)
        if not -length <= index < length:
            raise IndexError(f"index {index} is out of range for {length} items")
        return slice(index, index + 1 if index != -1 else None)
    if isinstance(item, np.ndarray):
        return torch.from_numpy(item)
    if isinstance(item, (list, range)):
        item = list(item)
        return torch.as_tensor(item, dtype=torch.bool if item and isinstance(item[0], bool) else torch.long)
    if isinstance(item, (slice, Tensor)):
        return item
    raise IndexError(f"cannot index rows with {type(item).__name__}; use an int, slice, mask or index tensor")


def split_range(
    values: Sequence[float] | Tensor | np.ndarray, dims: int, like: Tensor
) -> tuple[Tensor, Tensor]:
    """A range `(min_0, ..., min_{dims-1}, max_0, ..., max_{dims-1})` as `(mins, maxes)`.

    Args:
        values: `2 * dims` numbers.
        dims: 2 (BEV ranges) or 3.
        like: the tensor whose device the result takes.

    Returns:
        Two float32 `Tensor[dims]`.

    Raises:
        ShapeError: not `2 * dims` numbers.
    """
    rng = as_float_tensor(values, "range", device=like.device).reshape(-1)
    if rng.numel() != 2 * dims:
        raise ShapeError(f"range must hold {2 * dims} numbers (mins then maxes), got {rng.numel()}")
    return rng[:dims], rng[dims:]
