"""Box files: JSON, CSV, TXT and `.npy`, read and written (the format `pc3d convert` and
`pc3d demo` use).

Every format holds rows `x, y, z, x_size, y_size, z_size, yaw[, extras...]` (bottom centre,
sizes along the box's own axes, MMDetection3D 1.x conventions of the file's system); a row has
at least 7 values and all rows have the same width.

JSON (the richest; `mode` and `boxes` are required, the rest optional)::

    {"mode": "lidar",
     "columns": ["x", "y", "z", "x_size", "y_size", "z_size", "yaw"],
     "boxes": [[10.0, 2.0, -1.6, 3.9, 1.6, 1.5, 0.3], ...],
     "labels": ["Car", ...],        # one per box, strings or integers
     "scores": [0.93, ...],         # one per box
     "meta": {...}}                 # free-form, kept as is

A `.txt` whose first line has KITTI `label_2`'s 15/16 fields with a class name first is read as
KITTI labels: camera boxes (`x, y, z, l, h, w, ry`), class names as labels, `DontCare` left out.

CSV (`.csv`, comma-separated) and TXT (`.txt`, whitespace-separated): optional `# mode: lidar`
comment, optional header row naming the columns (a column called `label` holds labels, one
called `score` scores; the others are box values, in order), then one box per line::

    # mode: lidar
    x,y,z,x_size,y_size,z_size,yaw,label,score
    10.0,2.0,-1.6,3.9,1.6,1.5,0.3,Car,0.93

`.npy`: a float array `[N, 7+C]`; no mode, labels or scores.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.points import atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from pc3d.structures import Boxes3D

BOX_EXTENSIONS: tuple[str, ...] = (".json", ".csv", ".txt", ".npy")
MODES: tuple[str, ...] = ("lidar", "camera", "depth")
_JSON_KEYS = ("mode", "columns", "boxes", "labels", "scores", "meta")
_SIZE_NAMES = ("x_size", "y_size", "z_size")
Label = str | int


def box_columns(width: int) -> list[str]:
    """Column names of a box row of `width` values: `x y z x_size y_size z_size yaw extra_7 ...`."""
    return ["x", "y", "z", *_SIZE_NAMES, "yaw", *(f"extra_{i}" for i in range(7, width))]


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
        """The boxes as a structure of `mode` (default: the file's mode; they must agree)."""
        from pc3d.structures import box_class

        chosen = resolve_mode(self, mode)
        return box_class(chosen)(self.boxes)


def resolve_mode(data: BoxFile, mode: str | None) -> str:
    """The system of `data`: `mode` if given (checked against the file's), else the file's."""
    where = f"{data.path}: " if data.path is not None else ""
    given = _check_mode(mode, where + "mode ") if mode is not None else None
    if given is not None and data.mode is not None and given != data.mode:
        raise FormatError(f"{where}the file holds {data.mode} boxes, but {given} was asked for")
    chosen = given or data.mode
    if chosen is None:
        raise FormatError(f"{where}the file does not say which system its boxes are in; pass the mode")
    return chosen


def _check_mode(mode: object, where: str) -> str:
    key = str(getattr(mode, "value", mode)).strip().lower()
    key = "camera" if key == "cam" else key
    if key not in MODES:
        raise FormatError(f"{where}{mode!r} is not a box mode; valid modes are {', '.join(MODES)}")
    return key


def _validate(path: Path, boxes: np.ndarray, row_names: Sequence[str] | None = None) -> np.ndarray:
    """Checks finite values and non-negative sizes; `row_names[i]` says where row i came from."""

    def where(i: int) -> str:
        return row_names[i] if row_names is not None else f"box {i}"

    if boxes.ndim != 2 or (boxes.shape[0] and boxes.shape[1] < 7):
        width = boxes.shape[1] if boxes.ndim == 2 else boxes.shape
        raise FormatError(
            f"{path}: boxes have {width} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    if boxes.shape[0] == 0:
        return boxes.reshape(0, max(7, boxes.shape[1]))
    bad = ~np.isfinite(boxes)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FormatError(f"{path}: {where(row)}: {box_columns(boxes.shape[1])[col]} is {boxes[row, col]}")
    negative = boxes[:, 3:6] < 0
    if negative.any():
        row, col = np.argwhere(negative)[0]
        raise FormatError(
            f"{path}: {where(row)}: negative size {_SIZE_NAMES[col]} = {boxes[row, 3 + col]}"
        )
    return boxes


# ------------------------------------------------------------------------------------ read


def read_box_file(path: str | os.PathLike[str]) -> BoxFile:
    """Read a `.json`, `.csv`, `.txt` or `.npy` box file (format in the module doc).

    Raises:
        FormatError: unknown extension, unparsable content, rows narrower than 7 or of
            different widths, NaN/inf values, negative sizes, an unknown mode, or labels/scores
            not matching the number of boxes; the message names the file and the row or line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".txt" and looks_like_kitti_labels(path):
        return _read_kitti_labels(path)
    if suffix in (".csv", ".txt"):
        return _read_table(path, "," if suffix == ".csv" else None)
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise FormatError(f"{path}: not a readable .npy array ({err})") from err
        if not np.issubdtype(array.dtype, np.number):
            raise FormatError(f"{path}: boxes must be a numeric array [N, 7+C], got dtype {array.dtype}")
        if array.size == 0 and array.ndim != 2:
            array = array.reshape(0, 7)
        return BoxFile(_validate(path, array.astype(np.float32)), path=path)
    raise FormatError(f"{path}: unknown box file extension {path.suffix!r}; supported: {', '.join(BOX_EXTENSIONS)}")


def looks_like_kitti_labels(path: str | os.PathLike[str]) -> bool:
    """True when the first data line has KITTI `label_2`'s 15 fields (16 with a score) and
    starts with a class name rather than a number."""
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            return len(tokens) in (15, 16) and not _is_number(tokens[0])
    return False


def _read_kitti_labels(path: Path) -> BoxFile:
    """A KITTI `label_2` file as camera boxes (`DontCare` regions have no 3D box and are left
    out); scores come from the 16th field when every object has one."""
    from pc3d.io.kitti import read_kitti_labels

    objects = read_kitti_labels(path).objects()
    scores = objects.score if len(objects) and np.isfinite(objects.score).all() else None
    boxes = objects.to_camera_boxes().tensor.numpy()
    return BoxFile(boxes, "camera", [str(t) for t in objects.types], scores, {"format": "kitti label_2"}, path)


def _read_json(path: Path) -> BoxFile:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from err
    if not isinstance(content, dict):
        raise FormatError(f"{path}: expected a JSON object with 'mode' and 'boxes', got {type(content).__name__}")
    unknown = sorted(set(content) - set(_JSON_KEYS))
    if unknown:
        raise FormatError(f"{path}: unknown key(s) {unknown}; a box file has {', '.join(_JSON_KEYS)}")
    for key in ("mode", "boxes"):
        if key not in content:
            raise FormatError(f"{path}: no '{key}' key")
    mode = _check_mode(content["mode"], f"{path}: mode ")
    rows = content["boxes"]
    if not isinstance(rows, list):
        raise FormatError(f"{path}: 'boxes' must be a list of rows")
    widths = {len(r) if isinstance(r, list) else -1 for r in rows}
    if -1 in widths:
        row = next(i for i, r in enumerate(rows) if not isinstance(r, list))
        raise FormatError(f"{path}: box {row} is not a list of numbers")
    if len(widths) > 1:
        first = len(rows[0])
        row = next(i for i, r in enumerate(rows) if len(r) != first)
        raise FormatError(f"{path}: box {row} has {len(rows[row])} values, box 0 has {first}; all rows need the same width")
    if rows and min(widths) < 7:
        raise FormatError(
            f"{path}: boxes have {min(widths)} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    try:
        boxes = np.array(rows, dtype=np.float64).reshape(len(rows), -1 if rows else 7)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: 'boxes' holds a value that is not a number ({err})") from err
    boxes = _validate(path, boxes).astype(np.float32)
    if "columns" in content and rows and len(content["columns"]) != boxes.shape[1]:
        raise FormatError(f"{path}: 'columns' names {len(content['columns'])} columns, boxes have {boxes.shape[1]}")
    labels = content.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or len(labels) != len(boxes):
            raise FormatError(f"{path}: 'labels' must be a list of {len(boxes)} labels (one per box)")
        bad = next((i for i, lab in enumerate(labels) if isinstance(lab, bool) or not isinstance(lab, (str, int))), None)
        if bad is not None:
            raise FormatError(f"{path}: label {bad} is {labels[bad]!r}; labels are strings or integers")
    scores = content.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or len(scores) != len(boxes):
            raise FormatError(f"{path}: 'scores' must be a list of {len(boxes)} numbers (one per box)")
        try:
            scores = np.array(scores, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise FormatError(f"{path}: 'scores' holds a value that is not a number") from err
    meta = content.get("meta", {})
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: 'meta' must be a JSON object")
    return BoxFile(boxes, mode, labels, scores, meta, path)


def _read_table(path: Path, delimiter: str | None) -> BoxFile:
    mode: str | None = None
    text = path.read_text(encoding="utf-8")
    body: list[tuple[int, list[str]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, _, value = stripped[1:].partition(":")
            if key.strip().lower() == "mode":
                mode = _check_mode(value.strip(), f"{path}: line {line_no}: mode ")
            continue
        if delimiter is None:
            tokens = stripped.split()
        else:
            tokens = [t.strip() for t in next(csv.reader([stripped], delimiter=delimiter))]
        body.append((line_no, tokens))
    header: list[str] | None = None
    if body and not any(_is_number(t) for t in body[0][1]):
        header = [t.lower() for t in body.pop(0)[1]]
    elif body and not all(_is_number(t) for t in body[0][1]):
        raise FormatError(
            f"{path}: line {body[0][0]} mixes numbers and text; a table with labels needs a header "
            "row naming its columns (the label column is called 'label')"
        )
    label_col = header.index("label") if header and "label" in header else None
    score_col = header.index("score") if header and "score" in header else None
    width = len(header) if header else (len(body[0][1]) if body else 7)
    for line_no, tokens in body:
        if len(tokens) != width:
            raise FormatError(f"{path}: line {line_no} has {len(tokens)} values, expected {width}")
    value_cols = [i for i in range(width) if i not in (label_col, score_col)]
    if len(value_cols) < 7:
        raise FormatError(
            f"{path}: boxes have {len(value_cols)} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    numeric = value_cols + ([score_col] if score_col is not None else [])
    for line_no, tokens in body:
        for col in numeric:
            if not _is_number(tokens[col]):
                name = header[col] if header else f"column {col}"
                raise FormatError(f"{path}: line {line_no}: {name} value {tokens[col]!r} is not a number")
    table = np.array([[tokens[c] for c in numeric] for _, tokens in body], dtype=np.float64)
    table = table.reshape(len(body), len(numeric))
    boxes = _validate(path, table[:, : len(value_cols)], [f"line {n}" for n, _ in body]).astype(np.float32)
    labels = [tokens[label_col] for _, tokens in body] if label_col is not None else None
    scores = table[:, -1].astype(np.float32) if score_col is not None else None
    return BoxFile(boxes, mode, labels, scores, {}, path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------- write


def write_box_file(path: str | os.PathLike[str], data: BoxFile) -> Path:
    """Write `data` as `.json`, `.csv`, `.txt` or `.npy` (by extension), atomically.

    `.npy` keeps only the numbers; CSV/TXT keep mode, labels and scores; JSON keeps everything.
    """
    path = Path(path)
    boxes = _validate(path, np.asarray(data.boxes, dtype=np.float32))
    n = len(boxes)
    if data.labels is not None and len(data.labels) != n:
        raise FormatError(f"{path}: {len(data.labels)} labels for {n} boxes")
    if data.scores is not None and len(data.scores) != n:
        raise FormatError(f"{path}: {len(data.scores)} scores for {n} boxes")
    mode = _check_mode(data.mode, f"{path}: mode ") if data.mode is not None else None
    suffix = path.suffix.lower()
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, boxes)
        payload = buffer.getvalue()
    elif suffix == ".json":
        if mode is None:
            raise FormatError(f"{path}: a JSON box file needs a mode")
        content: dict[str, Any] = {"mode": mode, "columns": box_columns(boxes.shape[1]), "boxes": _rows(boxes)}
        if data.labels is not None:
            content["labels"] = [lab if isinstance(lab, str) else int(lab) for lab in data.labels]
        if data.scores is not None:
            content["scores"] = [_number(float(s)) for s in np.asarray(data.scores, np.float32)]
        if data.meta:
            content["meta"] = data.meta
        payload = _dump_json(content).encode("utf-8")
    elif suffix in (".csv", ".txt"):
        payload = _table_text(path, boxes, mode, data, "," if suffix == ".csv" else " ").encode("utf-8")
    else:
        raise FormatError(f"{path}: unknown box file extension {path.suffix!r}; supported: {', '.join(BOX_EXTENSIONS)}")
    atomic_write_bytes(path, payload)
    return path


def _number(value: float) -> float:
    # float32 values printed with the shortest repr that reads back to the same float32.
    return float(np.format_float_positional(np.float32(value), unique=True, trim="0")) if math.isfinite(value) else value


def _rows(boxes: np.ndarray) -> list[list[float]]:
    return [[_number(v) for v in row] for row in boxes.tolist()]


def _dump_json(content: dict[str, Any]) -> str:
    # One box per line and short lists on one line: readable, and diffs stay small.
    parts = []
    for key, value in content.items():
        if key == "boxes" and value:
            rows = ",\n".join("    " + json.dumps(row) for row in value)
            parts.append(f'  "boxes": [\n{rows}\n  ]')
        elif key == "meta" and value:
            items = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f'  "meta": {{\n{items}\n  }}')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _table_text(path: Path, boxes: np.ndarray, mode: str | None, data: BoxFile, sep: str) -> str:
    header = box_columns(boxes.shape[1])
    columns: list[list[str]] = [[repr(_number(v)) for v in row] for row in boxes.tolist()]
    if data.labels is not None:
        header.append("label")
        for row, label in zip(columns, data.labels, strict=True):
            text = str(label)
            if not text or sep in text or text.startswith("#") or (sep == " " and any(c.isspace() for c in text)):
                raise FormatError(f"{path}: label {text!r} cannot be written to a {path.suffix} table")
            row.append(text)
    if data.scores is not None:
        header.append("score")
        for row, score in zip(columns, np.asarray(data.scores, np.float32).tolist(), strict=True):
            row.append(repr(_number(score)))
    lines = ([f"# mode: {mode}"] if mode else []) + [sep.join(header)] + [sep.join(row) for row in columns]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ structures


def load_boxes(path: str | os.PathLike[str], mode: str | None = None) -> Boxes3D:
    """Read a box file into `LiDARBoxes3D`/`CameraBoxes3D`/`DepthBoxes3D` (by the file's mode,
    or `mode` for files that do not state one)."""
    return read_box_file(path).to_boxes(mode)


def save_boxes(
    path: str | os.PathLike[str],
    boxes: Boxes3D | np.ndarray | torch.Tensor,
    mode: str | None = None,
    labels: Sequence[Label] | None = None,
    scores: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write boxes (a structure, whose mode is used, or an array `[N, 7+C]` with `mode`)."""
    if hasattr(boxes, "mode") and hasattr(boxes, "tensor"):
        structure_mode = str(boxes.mode.value)
        if mode is not None and _check_mode(mode, "mode ") != structure_mode:
            raise FormatError(f"boxes are {structure_mode} boxes, but mode={mode!r} was given")
        mode, array = structure_mode, boxes.numpy()
    else:
        array = boxes.detach().cpu().numpy() if hasattr(boxes, "detach") else np.asarray(boxes)
    if scores is not None and hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    data = BoxFile(
        np.asarray(array, dtype=np.float32).reshape(len(array), -1) if len(array) else np.zeros((0, 7), np.float32),
        mode,
        list(labels) if labels is not None else None,
        np.asarray(scores, dtype=np.float32) if scores is not None else None,
        dict(meta or {}),
    )
    return write_box_file(path, data)
