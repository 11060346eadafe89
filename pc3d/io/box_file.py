"""The content of a box file (`BoxFile`) and the checks every box format applies.

A box row is `x, y, z, x_size, y_size, z_size, yaw[, extras...]` (bottom centre, sizes along
the box's own axes, MMDetection3D 1.x conventions of the file's system); a row has at least 7
values and all rows have the same width. Formats: `pc3d.io.boxes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.values import first_non_finite
from pc3d.structures.box_mode import MODE_NAMES

if TYPE_CHECKING:
    from pc3d.structures import Boxes3D

__all__ = [
    "MODES",
    "BoxFile",
    "Label",
    "box_columns",
    "check_mode",
    "float32_number",
    "resolve_mode",
    "validate_boxes",
]

MODES: tuple[str, ...] = MODE_NAMES
SIZE_NAMES: tuple[str, ...] = ("x_size", "y_size", "z_size")
Label = str | int


def box_columns(width: int) -> list[str]:
    """Column names of a box row of `width` values: `x y z x_size y_size z_size yaw extra_7 ...`."""
    return ["x", "y", "z", *SIZE_NAMES, "yaw", *(f"extra_{i}" for i in range(7, width))]


def check_column_order(source: str, names: list[str]) -> None:
    """Refuse box column names that place a known column elsewhere than pc3d reads it.

    Box values are read by position (``x y z x_size y_size z_size yaw``, then extras); names are
    not used to reorder them. A file whose header or ``columns`` puts one of those seven names at
    another position (``yaw,x,y,...``) would be misread silently, so it is an error; other names
    (``l``, ``w``, ``h``, ``ry`` ...) are taken as positional.

    Args:
        source: the file, named in the error.
        names: the names of the box value columns (without ``label`` and ``score``), in order.

    Raises:
        FormatError: a known name out of its place.
    """
    known = box_columns(7)
    for position, name in enumerate(names):
        name = str(name).strip().lower()
        if name in known and known.index(name) != position:
            raise FormatError(
                f"{source}: column {position} is named {name!r}, but box values are read by position "
                f"({', '.join(known)}, then extras): write the columns in that order"
            )


@dataclass(frozen=True)
class BoxFile:
    """The content of a box file.

    Attributes:
        boxes: `float32 ndarray[N, 7+C]`.
        mode: `"lidar"`, `"camera"`, `"depth"`, or None when the file does not say (`.npy`, a
            CSV without `# mode:`).
        labels: one label per box, or None.
        scores: `float32 ndarray[N]`, or None.
        meta: free-form JSON metadata (empty for other formats).
        path: the file read, if any.
    """

    boxes: np.ndarray
    mode: str | None = None
    labels: list[Label] | None = None
    scores: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to_boxes(self, mode: str | None = None) -> Boxes3D:
        """The boxes as a structure of `mode` (default: the file's mode; they must agree).

        Raises:
            FormatError: the modes disagree, or neither the file nor `mode` names one.
        """
        from pc3d.structures import box_class

        chosen = resolve_mode(self, mode)
        return box_class(chosen)(self.boxes)


def resolve_mode(data: BoxFile, mode: str | None) -> str:
    """The system of `data`: `mode` if given (checked against the file's), else the file's.

    Args:
        data: a box file's content.
        mode: the system asked for, or None.

    Returns:
        `"lidar"`, `"camera"` or `"depth"`.

    Raises:
        FormatError: an unknown mode, a mode that contradicts the file's, or no mode at all.
    """
    where = f"{data.path}: " if data.path is not None else ""
    given = check_mode(mode, where + "mode ") if mode is not None else None
    if given is not None and data.mode is not None and given != data.mode:
        raise FormatError(f"{where}the file holds {data.mode} boxes, but {given} was asked for")
    chosen = given or data.mode
    if chosen is None:
        raise FormatError(f"{where}the file does not say which system its boxes are in; pass the mode")
    return chosen


def check_mode(mode: object, where: str) -> str:
    """`mode` as one of `MODES` (case-insensitive; `"cam"` means camera).

    Args:
        mode: a string or a `BoxMode`-like enum.
        where: prefix of the error message (e.g. `"<file>: mode "`).

    Raises:
        FormatError: not a box mode.
    """
    key = str(getattr(mode, "value", mode)).strip().lower()
    key = "camera" if key == "cam" else key
    if key not in MODES:
        raise FormatError(f"{where}{mode!r} is not a box mode; valid modes are {', '.join(MODES)}")
    return key


def validate_boxes(path: Path, boxes: np.ndarray, row_names: Sequence[str] | None = None) -> np.ndarray:
    """Check box rows: at least 7 values, all finite, sizes not negative.

    Args:
        path: the file, for messages.
        boxes: `[N, W]`.
        row_names: where row i came from (e.g. `"line 3"`); default `"box i"`.

    Returns:
        `boxes` (an empty array as `[0, max(7, W)]`).

    Raises:
        FormatError: naming the file, the row and the column.
    """

    def where(i: int) -> str:
        """Where row `i` came from."""
        return row_names[i] if row_names is not None else f"box {i}"

    if boxes.ndim != 2 or (boxes.shape[0] and boxes.shape[1] < 7):
        width = boxes.shape[1] if boxes.ndim == 2 else boxes.shape
        raise FormatError(
            f"{path}: boxes have {width} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    if boxes.shape[0] == 0:
        return boxes.reshape(0, max(7, boxes.shape[1]))
    bad = first_non_finite(boxes)
    if bad is not None:
        row, col = bad
        raise FormatError(f"{path}: {where(row)}: {box_columns(boxes.shape[1])[col]} is {boxes[row, col]}")
    negative = boxes[:, 3:6] < 0
    if negative.any():
        row, col = np.argwhere(negative)[0]
        raise FormatError(f"{path}: {where(row)}: negative size {SIZE_NAMES[col]} = {boxes[row, 3 + col]}")
    return boxes


def float32_number(value: float) -> float:
    """`value` as the shortest float that reads back to the same float32 (what box files
    print, so that `1.6` stays `1.6` rather than `1.600000023841858`); non-finite values as they are."""
    if not math.isfinite(value):
        return value
    return float(np.format_float_positional(np.float32(value), unique=True, trim="0"))
