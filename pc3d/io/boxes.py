"""Box files: JSON, CSV, TXT and `.npy`, read and written (the format `pc3d convert` and
`pc3d demo` use).

Every format holds rows `x, y, z, x_size, y_size, z_size, yaw[, extras...]` (bottom centre,
sizes along the box's own axes, MMDetection3D 1.x conventions of the file's system); a row has
at least 7 values and all rows have the same width (`pc3d.io.box_file`).

| extension | module | holds |
|---|---|---|
| `.json` | `pc3d.io.box_json` | mode, column names, boxes, labels, scores, free-form meta |
| `.csv`, `.txt` | `pc3d.io.box_table` | optional `# mode:` line and header row; labels and scores as columns |
| `.txt` (KITTI) | `pc3d.io.kitti` | a `label_2` file: camera boxes `x, y, z, l, h, w, ry`, class names, scores if all have one; `DontCare` left out |
| `.npy` | here | a float array `[N, 7+C]`; no mode, labels or scores |

A `.txt` whose first data line has KITTI `label_2`'s 15/16 fields with a class name first is
read as KITTI labels. Writing is atomic (`pc3d.io.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write_bytes
from pc3d.io.box_file import MODES, BoxFile, Label, box_columns, check_mode, resolve_mode, validate_boxes
from pc3d.io.box_json import encode_box_json, read_box_json
from pc3d.io.box_table import encode_box_table, read_box_table
from pc3d.io.point_formats.npy import encode_npy, load_npy
from pc3d.io.values import is_number

if TYPE_CHECKING:
    import torch

    from pc3d.structures import Boxes3D

__all__ = [
    "BOX_EXTENSIONS",
    "MODES",
    "BoxFile",
    "Label",
    "box_columns",
    "load_boxes",
    "looks_like_kitti_labels",
    "read_box_file",
    "resolve_mode",
    "save_boxes",
    "write_box_file",
]

BOX_EXTENSIONS: tuple[str, ...] = (".json", ".csv", ".txt", ".npy")


def _unknown_extension(path: Path) -> FormatError:
    return FormatError(
        f"{path}: unknown box file extension {path.suffix!r}; supported: {', '.join(BOX_EXTENSIONS)}"
    )


def read_box_file(path: str | os.PathLike[str]) -> BoxFile:
    """Read a `.json`, `.csv`, `.txt` or `.npy` box file (formats in the module doc).

    Args:
        path: the file; its extension (and, for `.txt`, its first line) chooses the format.

    Returns:
        The boxes with whatever mode, labels, scores and meta the file holds.

    Raises:
        FormatError: unknown extension, unparsable content, rows narrower than 7 or of
            different widths, NaN/inf values, negative sizes, an unknown mode, or labels/scores
            not matching the number of boxes; the message names the file and the row or line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_box_json(path)
    if suffix == ".txt" and looks_like_kitti_labels(path):
        return _read_kitti_labels(path)
    if suffix in (".csv", ".txt"):
        return read_box_table(path, "," if suffix == ".csv" else None)
    if suffix == ".npy":
        array = load_npy(path)
        if not np.issubdtype(array.dtype, np.number):
            raise FormatError(f"{path}: boxes must be a numeric array [N, 7+C], got dtype {array.dtype}")
        if array.size == 0 and array.ndim != 2:
            array = array.reshape(0, 7)
        return BoxFile(validate_boxes(path, array.astype(np.float32)), path=path)
    raise _unknown_extension(path)


def looks_like_kitti_labels(path: str | os.PathLike[str]) -> bool:
    """True when the first data line has KITTI `label_2`'s 15 fields (16 with a score) and
    starts with a class name rather than a number."""
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            return len(tokens) in (15, 16) and not is_number(tokens[0])
    return False


def _read_kitti_labels(path: Path) -> BoxFile:
    """A KITTI `label_2` file as camera boxes (`DontCare` regions have no 3D box and are left
    out); scores come from the 16th field when every object has one."""
    from pc3d.io.kitti import read_kitti_labels

    objects = read_kitti_labels(path).objects()
    scores = objects.score if len(objects) and np.isfinite(objects.score).all() else None
    boxes = objects.camera_box_array()
    labels: list[Label] = [str(t) for t in objects.types]
    return BoxFile(boxes, "camera", labels, scores, {"format": "kitti label_2"}, path)


def write_box_file(path: str | os.PathLike[str], data: BoxFile) -> Path:
    """Write `data` as `.json`, `.csv`, `.txt` or `.npy` (by extension), atomically.

    `.npy` keeps only the numbers; CSV/TXT keep mode, labels and scores; JSON keeps everything
    (non-finite scores as `null`).

    Args:
        path: the output; parent folders are created.
        data: the boxes and what goes with them.

    Returns:
        The path written.

    Raises:
        FormatError: invalid boxes, labels or scores not one per box, an unknown mode, no mode
            for JSON, or a label a table cannot hold; naming the file.
    """
    path = Path(path)
    boxes = validate_boxes(path, np.asarray(data.boxes, dtype=np.float32))
    n = len(boxes)
    if data.labels is not None and len(data.labels) != n:
        raise FormatError(f"{path}: {len(data.labels)} labels for {n} boxes")
    if data.scores is not None and len(data.scores) != n:
        raise FormatError(f"{path}: {len(data.scores)} scores for {n} boxes")
    mode = check_mode(data.mode, f"{path}: mode ") if data.mode is not None else None
    suffix = path.suffix.lower()
    if suffix == ".npy":
        payload = encode_npy(boxes)
    elif suffix == ".json":
        payload = encode_box_json(path, boxes, mode, data).encode("utf-8")
    elif suffix in (".csv", ".txt"):
        payload = encode_box_table(path, boxes, mode, data, "," if suffix == ".csv" else " ").encode("utf-8")
    else:
        raise _unknown_extension(path)
    return atomic_write_bytes(path, payload)


def load_boxes(path: str | os.PathLike[str], mode: str | None = None) -> Boxes3D:
    """Read a box file into `LiDARBoxes3D`/`CameraBoxes3D`/`DepthBoxes3D`.

    Args:
        path: the file (see `read_box_file`).
        mode: the system, for files that do not state one (checked against those that do).

    Returns:
        The boxes structure.
    """
    return read_box_file(path).to_boxes(mode)


def save_boxes(
    path: str | os.PathLike[str],
    boxes: Boxes3D | np.ndarray | torch.Tensor,
    mode: str | None = None,
    labels: Sequence[Label] | None = None,
    scores: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write boxes to a box file (see `write_box_file`).

    Args:
        path: the output.
        boxes: a structure (whose mode is used) or an array/tensor `[N, 7+C]`.
        mode: the system of an array; for a structure it must agree with the structure's.
        labels: one per box.
        scores: one per box.
        meta: free-form metadata (JSON only).

    Returns:
        The path written.
    """
    if hasattr(boxes, "mode") and hasattr(boxes, "tensor"):  # a boxes structure
        structure = cast("Boxes3D", boxes)
        structure_mode = str(getattr(structure.mode, "value", structure.mode))
        if mode is not None and check_mode(mode, "mode ") != structure_mode:
            raise FormatError(f"boxes are {structure_mode} boxes, but mode={mode!r} was given")
        mode, array = structure_mode, structure.tensor.detach().cpu().numpy()
    else:
        array = boxes.detach().cpu().numpy() if hasattr(boxes, "detach") else np.asarray(boxes)
    if scores is not None and hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    data = BoxFile(
        np.asarray(array, dtype=np.float32).reshape(len(array), -1)
        if len(array)
        else np.zeros((0, 7), np.float32),
        mode,
        list(labels) if labels is not None else None,
        np.asarray(scores, dtype=np.float32) if scores is not None else None,
        dict(meta or {}),
    )
    return write_box_file(path, data)
