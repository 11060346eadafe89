"""Input checks shared by the ops: box structures or tensors in, validated z-up tensors out.

The ops compute on z-up boxes (LiDAR/Depth layout: BEV plane x-y, yaw counter-clockwise about
+z, bottom-centre z). Camera boxes are turned into that layout with their exact default axis
permutation (`convert_to("lidar")`), which maps the camera's x-z ground plane and its -y "up"
onto the LiDAR x-y plane and +z, so IoU and containment are the same numbers in either system.
`pc3d.structures` imports `pc3d.ops`, so it is imported here lazily.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError

_BOX_COLUMNS = ("x", "y", "z", "x_size", "y_size", "z_size", "yaw")
_BEV_COLUMNS = ("x", "y", "x_size", "y_size", "yaw")


def _structure_types() -> tuple[type, type] | None:
    """`(Boxes3D, BasePoints)` when `pc3d.structures` is importable, else None."""
    try:
        from pc3d.structures import BasePoints, Boxes3D
    except ImportError:
        return None
    return Boxes3D, BasePoints


def box_mode_of(boxes: object) -> str | None:
    """The coordinate system name of a box structure (`"lidar"`, ...), None for plain tensors."""
    types = _structure_types()
    if types is not None and isinstance(boxes, types[0]):
        return str(boxes.mode.value)
    return None


def _first_bad_row(bad: Tensor) -> int:
    return int(torch.nonzero(bad.reshape(bad.shape[0], -1).any(dim=1))[0, 0])


def check_finite(tensor: Tensor, what: str, columns: tuple[str, ...]) -> None:
    """Raise `FormatError` naming the first row and column holding NaN or inf."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        row = _first_bad_row(bad)
        col = int(torch.nonzero(bad[row])[0, 0])
        name = columns[col] if col < len(columns) else f"column {col}"
        raise FormatError(f"{what} row {row}: {name} is {tensor[row, col].item()} (NaN/inf is not a box)")


def as_z_up_boxes(boxes: Any, what: str, allow_bev: bool = False) -> Tensor:
    """Validated z-up box tensor `Tensor[N, 7]` (or `Tensor[N, 5]` BEV boxes when `allow_bev`).

    Args:
        boxes: a `Boxes3D` structure (Camera boxes are converted to LiDAR axes), a tensor
            `Tensor[N, 7+C]` read as LiDAR boxes, or, with `allow_bev`, `Tensor[N, 5]` BEV boxes
            `x, y, x_size, y_size, yaw`. Extra columns beyond the yaw are dropped.
        what: the argument's name, used in error messages.

    Raises:
        ShapeError: not `(N, 7+C)` (or `(N, 5)`).
        FormatError: NaN/inf values or negative sizes (naming the row and column).
    """
    types = _structure_types()
    if types is not None and isinstance(boxes, types[0]):
        tensor = boxes.tensor if boxes.mode.z_up else boxes.convert_to("lidar").tensor
    elif isinstance(boxes, Tensor):
        tensor = boxes
    else:
        raise FormatError(f"{what} must be a box structure or a tensor, got {type(boxes).__name__}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    bev = allow_bev and tensor.dim() == 2 and tensor.shape[1] == 5
    if tensor.dim() != 2 or not (bev or tensor.shape[1] >= 7):
        expected = "(N, 7+C) or (N, 5) BEV boxes" if allow_bev else "(N, 7+C)"
        raise ShapeError(f"{what} must have shape {expected}, got {tuple(tensor.shape)}")
    tensor = tensor[:, :5] if bev else tensor[:, :7]
    columns = _BEV_COLUMNS if bev else _BOX_COLUMNS
    check_finite(tensor, what, columns)
    sizes = tensor[:, 2:4] if bev else tensor[:, 3:6]
    negative = sizes < 0
    if bool(negative.any()):
        row = _first_bad_row(negative)
        col = int(torch.nonzero(negative[row])[0, 0]) + (2 if bev else 3)
        raise FormatError(f"{what} row {row}: {columns[col]} is {tensor[row, col].item()}; sizes must not be negative")
    return tensor


def check_same_system(a: Any, b: Any) -> None:
    """Both structures must be in one system (a plain tensor is read as LiDAR)."""
    mode_a, mode_b = box_mode_of(a) or "lidar", box_mode_of(b) or "lidar"
    if mode_a != mode_b:
        raise FormatError(
            f"boxes are in different systems ({mode_a} and {mode_b}); convert one with .convert_to({mode_a!r}) first"
        )


def bev_view(boxes: Tensor) -> Tensor:
    """`Tensor[N, 5]` float64 BEV boxes `x, y, x_size, y_size, yaw` of z-up boxes (7 or 5 columns)."""
    if boxes.shape[1] == 5:
        return boxes.double()
    return boxes[:, [0, 1, 3, 4, 6]].double()


def check_scores(scores: Any, num: int, what: str = "scores") -> Tensor:
    """Validated `Tensor[N]` scores (finite, one per box)."""
    if not isinstance(scores, Tensor):
        raise FormatError(f"{what} must be a tensor, got {type(scores).__name__}")
    if scores.dim() != 1 or scores.shape[0] != num:
        raise ShapeError(f"{what} must have shape ({num},) (one per box), got {tuple(scores.shape)}")
    if bool(torch.isnan(scores).any()):
        row = int(torch.nonzero(torch.isnan(scores))[0, 0])
        raise FormatError(f"{what}[{row}] is NaN")
    return scores
