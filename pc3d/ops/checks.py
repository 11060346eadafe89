"""Input checks of the ops, on tensors only; `pc3d.structures` validates its data with them too.

The box ops compute on z-up boxes: `Tensor[N, 7+C]` rows `x, y, z, x_size, y_size, z_size, yaw`
with `(x, y, z)` the bottom centre, the BEV plane x-y and the yaw counter-clockwise about +z
(0 along +x): the LiDAR and Depth layouts. Camera boxes (y down) become z-up boxes in
`pc3d.structures`, which also checks that two structures share one system; the ops never see a
structure and never import `pc3d.structures`.

One message format for every bad value: `"<what> row <r>: <column name> (column <c>) is <v>; ..."`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError

BOX_COLUMNS = ("x", "y", "z", "x_size", "y_size", "z_size", "yaw")
BEV_COLUMNS = ("x", "y", "x_size", "y_size", "yaw")


def first_bad_row(mask: Tensor) -> int:
    """Index of the first row of `BoolTensor[N, ...]` holding a True anywhere (one must).

    Args:
        mask: the mask.
    """
    rows = mask.reshape(mask.shape[0], -1).any(dim=1)
    return int(torch.nonzero(rows)[0, 0])


def _column_name(columns: Sequence[str], col: int) -> str:
    return columns[col] if col < len(columns) else f"column {col}"


def check_finite(tensor: Tensor, what: str, columns: Sequence[str] = ()) -> None:
    """Raise `FormatError` naming the first row and column of `tensor` holding NaN or inf.

    Args:
        tensor: `Tensor[N, C]` to check.
        what: the data's name in the message (e.g. `"LiDARBoxes3D"`, `"boxes"`).
        columns: names of the first columns (the others are called `column <c>`).

    Raises:
        FormatError: e.g. `"boxes row 2: yaw (column 6) is nan; 1 row(s) hold NaN or infinite
            values"`.
    """
    if tensor.numel() == 0:
        return
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        row = first_bad_row(bad)
        col = int(torch.nonzero(bad[row])[0, 0])
        raise FormatError(
            f"{what} row {row}: {_column_name(columns, col)} (column {col}) is {tensor[row, col].item()}; "
            f"{int(bad.any(dim=1).sum())} row(s) hold NaN or infinite values"
        )


def check_non_negative(sizes: Tensor, what: str, columns: Sequence[str], first_column: int) -> None:
    """Raise `FormatError` naming the first negative size.

    Args:
        sizes: `Tensor[N, K]` size columns, the columns `first_column ... first_column + K - 1`
            of the data.
        what: the data's name in the message.
        columns: names of all the data's columns.
        first_column: index of `sizes`' first column in the data.

    Raises:
        FormatError: e.g. `"boxes row 1: z_size (column 5) is -2.0; sizes must not be negative"`.
    """
    negative = sizes < 0
    if sizes.numel() and bool(negative.any()):
        row = first_bad_row(negative)
        col = first_column + int(torch.nonzero(negative[row])[0, 0])
        raise FormatError(
            f"{what} row {row}: {_column_name(columns, col)} (column {col}) is "
            f"{sizes[row, col - first_column].item()}; sizes must not be negative"
        )


def as_z_up_boxes(boxes: object, what: str, allow_bev: bool = False) -> Tensor:
    """Validated z-up boxes `Tensor[N, 7]` (or BEV boxes `Tensor[N, 5]` when `allow_bev`).

    Args:
        boxes: `Tensor[N, 7+C]` z-up boxes (bottom centre, yaw counter-clockwise about +z), or,
            with `allow_bev`, `Tensor[N, 5]` BEV boxes `x, y, x_size, y_size, yaw`. Columns
            beyond the yaw are dropped; integer tensors become float32.
        what: the argument's name, used in error messages.
        allow_bev: accept 5-column BEV boxes.

    Returns:
        The first 7 (or 5) columns, a view when the dtype is already floating.

    Raises:
        FormatError: not a tensor (a box structure: call its own method, e.g.
            `Boxes3D.overlaps`), NaN/inf values or negative sizes (naming the row and column).
        ShapeError: not `(N, 7+C)` (or `(N, 5)`).
    """
    if not isinstance(boxes, Tensor):
        raise FormatError(
            f"{what} must be a Tensor[N, 7+C] of z-up boxes, got {type(boxes).__name__}; for box structures "
            "use their methods (Boxes3D.overlaps, bev_overlaps, points_in_boxes_part, nms_bev), which handle "
            "every system"
        )
    tensor = boxes if boxes.is_floating_point() else boxes.float()
    bev = allow_bev and tensor.dim() == 2 and tensor.shape[1] == 5
    if tensor.dim() != 2 or not (bev or tensor.shape[1] >= 7):
        expected = "(N, 7+C) or (N, 5) BEV boxes" if allow_bev else "(N, 7+C)"
        raise ShapeError(f"{what} must have shape {expected}, got {tuple(tensor.shape)}")
    tensor = tensor[:, :5] if bev else tensor[:, :7]
    columns = BEV_COLUMNS if bev else BOX_COLUMNS
    check_finite(tensor, what, columns)
    check_non_negative(tensor[:, 2:4] if bev else tensor[:, 3:6], what, columns, 2 if bev else 3)
    return tensor


def check_points(points: object, what: str = "points", hint: str = "") -> Tensor:
    """Validated points `Tensor[N, 3+C]` (x, y, z first) without a NaN coordinate.

    Infinite coordinates are allowed (such a point is outside every box and voxel grid), and so
    are NaN values in extra columns.

    Args:
        points: the points.
        what: their name in messages.
        hint: appended to the message when `points` is not a tensor.

    Returns:
        `points`, unchanged.

    Raises:
        FormatError: not a tensor, or NaN coordinates (naming the count and the first row).
        ShapeError: not `(N, 3+C)`.
    """
    if not isinstance(points, Tensor):
        raise FormatError(f"{what} must be a Tensor[N, 3+C], got {type(points).__name__}{hint}")
    if points.dim() != 2 or points.shape[1] < 3:
        raise ShapeError(f"{what} must have shape (N, 3+C), got {tuple(points.shape)}")
    # One cheap reduction over the contiguous tensor first (a NaN anywhere makes the sum NaN;
    # so can +inf and -inf, or NaN features), the row-wise check of x, y, z only when it fires.
    if points.is_floating_point() and bool(torch.isnan(points.sum())):
        nan = torch.isnan(points[:, :3]).any(dim=1)
        if bool(nan.any()):
            rows = torch.nonzero(nan)[:, 0]
            raise FormatError(
                f"{what} has {rows.numel()} row(s) with NaN coordinates (first: row {int(rows[0])}); "
                f"drop them first, e.g. {what}[~{what}[:, :3].isnan().any(1)]"
            )
    return points


def as_points_xyz(points: object, what: str = "points") -> Tensor:
    """`Tensor[N, 3]`: the coordinates of `Tensor[N, 3+C]` points (`check_points`), floating.

    Args:
        points: the points.
        what: their name in messages.
    """
    xyz = check_points(points, what, "; for point structures use boxes.points_in_boxes_part(points)")[:, :3]
    return xyz if xyz.is_floating_point() else xyz.float()


def bev_view(boxes: Tensor) -> Tensor:
    """`Tensor[N, 5]` float64 BEV boxes `x, y, x_size, y_size, yaw` of z-up boxes.

    Args:
        boxes: `Tensor[N, 7]` z-up boxes or `Tensor[N, 5]` BEV boxes.
    """
    if boxes.shape[1] == 5:
        return boxes.double()
    return boxes[:, [0, 1, 3, 4, 6]].double()


def check_scores(scores: object, num: int, what: str = "scores") -> Tensor:
    """Validated `Tensor[N]` scores: one per box, no NaN (infinite scores rank first or last).

    Args:
        scores: the scores.
        num: the number of boxes.
        what: their name in messages.

    Raises:
        FormatError: not a tensor, or a NaN score.
        ShapeError: not `(num,)`.
    """
    if not isinstance(scores, Tensor):
        raise FormatError(f"{what} must be a tensor, got {type(scores).__name__}")
    if scores.dim() != 1 or scores.shape[0] != num:
        raise ShapeError(f"{what} must have shape ({num},) (one per box), got {tuple(scores.shape)}")
    if bool(torch.isnan(scores).any()):
        row = int(torch.nonzero(torch.isnan(scores))[0, 0])
        raise FormatError(f"{what}[{row}] is NaN")
    return scores
