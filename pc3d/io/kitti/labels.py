"""KITTI `label_2` files: the one parser of pc3d (datasets, `pc3d convert` and the KITTI
evaluation all read labels through it).

A line has 15 whitespace-separated fields (ground truth), or 16 with a detection's score::

    type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]

`h, w, l` are the box height, width and length in metres, `x, y, z` the bottom centre in
rectified camera coordinates (x right, y down, z forward) and `rotation_y` the yaw about the
camera y axis (0 along +x; -pi/2 faces +z). `DontCare` lines mark image regions without 3D
labels; they are kept (`KittiLabels.dont_care`) and their 3D fields are placeholders (`-1`,
`-1000`, `-10`) that are not checked.

Label boxes become `CameraBoxes3D` rows `x, y, z, l, h, w, rotation_y` (KITTI stores `h, w, l`;
MMDetection3D and pc3d order the sizes along the box's own x, y, z axes: length, height, width).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write_text
from pc3d.io.kitti.calib import KittiCalib, camera_to_lidar_boxes
from pc3d.io.values import first_non_finite, is_number

if TYPE_CHECKING:
    from pc3d.structures import CameraBoxes3D, LiDARBoxes3D

# Name lists, shaped like pc3d.io.semseg's __all__ and tables: nothing to share.
__all__ = [
    "DONT_CARE",
    "LABEL_FIELDS",
    "KittiLabels",
    "format_kitti_labels",
    "parse_kitti_labels",
    "read_kitti_labels",
    "write_kitti_labels",
]

#: The fields of a `label_2` line, in order (the score only on detection lines).
LABEL_FIELDS: tuple[str, ...] = (
    "type", "truncated", "occluded", "alpha", "left", "top", "right", "bottom",
    "height", "width", "length", "x", "y", "z", "rotation_y", "score",
)  # fmt: skip
DONT_CARE = "DontCare"


@dataclass(frozen=True)
class KittiLabels:
    """The objects of one `label_2` file, as columns (one row per line, in file order).

    The floating-point columns have the dtype asked of the parser: float32 by default (made
    for building boxes), float64 to keep the values as written (the evaluation compares them
    with limits such as truncation <= 0.15, which float32's 0.15000000596 would fail).

    Attributes:
        types: `str ndarray[N]` class names as written (`Car`, `Pedestrian`, ..., `DontCare`).
        truncated: `float [N]` 0 (fully visible) to 1 (leaving the image).
        occluded: `int64 [N]` 0 visible, 1 partly, 2 largely occluded, 3 unknown (-1 DontCare).
        alpha: `float [N]` observation angle, radians (-10: not given).
        bbox2d: `float [N, 4]` image box `x1, y1, x2, y2` (left, top, right, bottom) in pixels.
        dims_hwl: `float [N, 3]` height, width, length in metres (KITTI's order).
        location: `float [N, 3]` bottom centre in rectified camera coordinates, metres.
        rotation_y: `float [N]` yaw about the camera y axis (= `CameraBoxes3D` yaw).
        score: `float [N]` detection score (16th field), NaN where absent.
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
    def has_score(self) -> np.ndarray:
        """`bool [N]`: True for lines with a 16th (score) field."""
        return ~np.isnan(self.score)

    @property
    def dims_lhw(self) -> np.ndarray:
        """`float [N, 3]`: length, height, width: the `CameraBoxes3D` size columns."""
        return self.dims_hwl[:, [2, 0, 1]]

    def where(self, index: int) -> str:
        """`"<file>:<line>"` of record `index`, for messages."""
        return f"{self.path if self.path is not None else '<labels>'}:{int(self.line_numbers[index])}"

    def objects(self) -> KittiLabels:
        """The records that are not `DontCare` (the ones with 3D boxes), in file order."""
        return self[~self.dont_care]

    def camera_box_array(self) -> np.ndarray:
        """`float32 ndarray[N, 7]` of the non-`DontCare` records (aligned with `objects()`):
        camera-box rows `x, y, z, l, h, w, rotation_y` (no torch needed)."""
        objects = self.objects()
        rows = np.concatenate([objects.location, objects.dims_lhw, objects.rotation_y[:, None]], axis=1)
        return rows.astype(np.float32).reshape(-1, 7)

    def to_camera_boxes(self) -> CameraBoxes3D:
        """`CameraBoxes3D` of the non-`DontCare` records (aligned with `objects()`):
        rows `x, y, z, l, h, w, rotation_y`."""
        from pc3d.structures import CameraBoxes3D

        return CameraBoxes3D(self.camera_box_array())

    def to_lidar_boxes(self, calib: KittiCalib) -> LiDARBoxes3D:
        """`LiDARBoxes3D` of the non-`DontCare` records, converted with `calib.cam_to_lidar`."""
        return camera_to_lidar_boxes(self.to_camera_boxes(), calib)


def read_kitti_labels(
    path: str | os.PathLike[str], dtype: DTypeLike = np.float32, scores: bool | None = None
) -> KittiLabels:
    """Read a KITTI `label_2/*.txt` file (see `parse_kitti_labels`).

    Args:
        path: the file.
        dtype: of the floating-point columns (float32, or float64 for the values as written).
        scores: None accepts lines with and without a score; True requires one on every line
            (detections), False on none (ground truth).

    Returns:
        One record per non-blank line; an empty file gives zero records.

    Raises:
        FormatError: see `parse_kitti_labels`; also a file that is not UTF-8 text.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not a text file ({err.reason})") from None
    return parse_kitti_labels(text, path, dtype, scores)


def parse_kitti_labels(
    text: str,
    path: str | os.PathLike[str] | None = None,
    dtype: DTypeLike = np.float32,
    scores: bool | None = None,
) -> KittiLabels:
    """Parse the text of a `label_2` file (15 fields per line, 16 with a score).

    `DontCare` lines are kept (see `KittiLabels.dont_care`) with their placeholder sizes.
    Blank lines are skipped; class names are kept as written.

    Args:
        text: the file's content.
        path: the file it came from, named in errors (`<file>:<line>: ...`) and kept in the record.
        dtype: of the floating-point columns (float32, or float64 for the values as written).
        scores: None accepts lines with and without a score; True requires one on every line
            (detections), False on none (ground truth).

    Returns:
        The records, in file order.

    Raises:
        FormatError: a wrong number of fields, a value that is not a finite number, a
            non-integer occlusion level, or a negative size on an object that is not
            `DontCare`, naming the file, the line and the field.
    """
    source = Path(path) if path is not None else None
    name = str(source) if source is not None else "<labels>"
    rows, tokens_of, line_numbers = _parse_lines(text, name, scores)
    values = np.array(rows, dtype=np.float64).reshape(-1, 15)
    types = np.array([tokens[0] for tokens in tokens_of], dtype=str).reshape(-1)
    lines = np.array(line_numbers, dtype=np.int64)
    _check_values(name, values, types, lines, tokens_of)
    return KittiLabels(
        types=types,
        truncated=values[:, 0].astype(dtype),
        occluded=values[:, 1].astype(np.int64),
        alpha=values[:, 2].astype(dtype),
        bbox2d=values[:, 3:7].astype(dtype),
        dims_hwl=values[:, 7:10].astype(dtype),
        location=values[:, 10:13].astype(dtype),
        rotation_y=values[:, 13].astype(dtype),
        score=values[:, 14].astype(dtype),
        line_numbers=lines,
        path=source,
    )


def _parse_lines(
    text: str, name: str, scores: bool | None
) -> tuple[list[list[float]], list[list[str]], list[int]]:
    """The 15 numbers (score NaN when absent), the tokens and the line number of each line."""
    rows: list[list[float]] = []
    tokens_of: list[list[str]] = []
    line_numbers: list[int] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        _check_field_count(f"{name}:{line_no}", len(tokens), scores)
        try:
            numbers = [float(token) for token in tokens[1:]]
        except ValueError:
            col, token = next((c, t) for c, t in enumerate(tokens[1:], start=2) if not is_number(t))
            raise FormatError(
                f"{name}:{line_no}: field {col} ({LABEL_FIELDS[col - 1]}) is not a number: {token!r}"
            ) from None
        rows.append(numbers if len(numbers) == 15 else [*numbers, math.nan])
        tokens_of.append(tokens)
        line_numbers.append(line_no)
    return rows, tokens_of, line_numbers


def _check_field_count(where: str, count: int, scores: bool | None) -> None:
    if scores is None:
        if count not in (15, 16):
            raise FormatError(f"{where}: expected 15 or 16 fields (16 with a score), found {count}")
        return
    expected = 16 if scores else 15
    if count == expected:
        return
    hint = ""
    if scores and count == 15:
        hint = " (a detection needs its score as the 16th field)"
    elif not scores and count == 16:
        hint = " (ground truth has no score field)"
    raise FormatError(f"{where}: expected {expected} fields, found {count}{hint}")


def _check_values(
    name: str, values: np.ndarray, types: np.ndarray, lines: np.ndarray, tokens_of: list[list[str]]
) -> None:
    """Finite values (the score only where given), integer occlusion, sizes of real objects."""
    has_score = np.array([len(tokens) == 16 for tokens in tokens_of], dtype=bool)
    bad = first_non_finite(np.where(has_score[:, None] | (np.arange(15) < 14), values, 0.0))
    if bad is not None:
        row, col = bad
        raise FormatError(
            f"{name}:{lines[row]}: field {col + 2} ({LABEL_FIELDS[col + 1]}) is not finite: "
            f"{tokens_of[row][col + 1]!r}"
        )
    fractional = np.flatnonzero(values[:, 1] != np.round(values[:, 1]))
    if fractional.size:
        row = int(fractional[0])
        raise FormatError(f"{name}:{lines[row]}: occluded must be an integer, found {tokens_of[row][2]!r}")
    negative = (values[:, 7:10] < 0) & (types != DONT_CARE)[:, None]
    if negative.any():
        row, col = (int(i) for i in np.argwhere(negative)[0])
        raise FormatError(
            f"{name}:{lines[row]}: negative size: {types[row]} has {LABEL_FIELDS[8 + col]} "
            f"{tokens_of[row][8 + col]} (only DontCare lines may hold the -1 placeholders)"
        )


def format_kitti_labels(labels: KittiLabels) -> str:
    """The text of a `label_2` file holding `labels`: ground truth with 2 decimals, as KITTI's;
    a detection (a record with a score, written in a 16th column) with 4 decimals throughout, as
    MMDetection3D writes its results: rounded to 0.01 m, boxes move across the 0.7 IoU threshold
    (Car 3D AP40 easy 62.2 instead of 64.2 on the demo model)."""
    lines = []
    for i in range(len(labels)):  # one line per object: output formatting, not a hot path
        values = [
            labels.truncated[i], labels.occluded[i], labels.alpha[i], *labels.bbox2d[i],
            *labels.dims_hwl[i], *labels.location[i], labels.rotation_y[i],
        ]  # fmt: skip
        scored = not math.isnan(float(labels.score[i]))
        decimals = 4 if scored else 2
        text = [str(labels.types[i]), f"{values[0]:.2f}", str(int(values[1]))]
        text += [f"{v:.{decimals}f}" for v in values[2:]]
        if scored:
            text.append(f"{float(labels.score[i]):.4f}")
        lines.append(" ".join(text))
    return "".join(line + "\n" for line in lines)


def write_kitti_labels(path: str | os.PathLike[str], labels: KittiLabels) -> Path:
    """Write `labels` as a KITTI `label_2` file, atomically (see `format_kitti_labels`).

    Args:
        path: the file to create or replace.
        labels: the records.

    Returns:
        The path written.
    """
    return atomic_write_text(path, format_kitti_labels(labels))
