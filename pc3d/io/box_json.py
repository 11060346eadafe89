"""JSON box files: the richest box format (`mode` and `boxes` required, the rest optional)::

    {"mode": "lidar",
     "columns": ["x", "y", "z", "x_size", "y_size", "z_size", "yaw"],
     "boxes": [[10.0, 2.0, -1.6, 3.9, 1.6, 1.5, 0.3], ...],
     "labels": ["Car", ...],        # one per box, strings or integers
     "scores": [0.93, ...],         # one per box; null for a score that is not a number
     "meta": {...}}                 # free-form, kept as is

Written through `pc3d.io.jsonio` (NaN and infinities as `null`), one box per line.

The predictions `pc3d infer` writes (MMDetection3D's result keys) read as box files too::

    {"box_mode": "lidar", "boxes_3d": [[...], ...], "scores_3d": [...], "labels_3d": [0, ...],
     "class_names": ["Pedestrian", "Cyclist", "Car"]}

their labels as class names when `class_names` is there, so `pc3d show --pred`, `pc3d convert`
and `pc3d info` take them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.box_file import (
    BoxFile,
    box_columns,
    check_column_order,
    check_mode,
    float32_number,
    validate_boxes,
)
from pc3d.io.jsonio import dumps

__all__ = ["JSON_KEYS", "PREDICTION_KEYS", "encode_box_json", "read_box_json"]

JSON_KEYS: tuple[str, ...] = ("mode", "columns", "boxes", "labels", "scores", "meta")
#: The keys of `pc3d infer`'s predictions (`boxes_3d` marks the layout).
PREDICTION_KEYS: tuple[str, ...] = ("box_mode", "boxes_3d", "scores_3d", "labels_3d", "class_names")


def read_box_json(path: Path) -> BoxFile:
    """Read a JSON box file.

    Raises:
        FormatError: invalid JSON, unknown or missing keys, rows that are not lists of numbers
            or differ in width, or labels/scores not one per box; naming the file and the box.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(
            f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
        ) from err
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from err
    except RecursionError as err:
        raise FormatError(f"{path}: JSON nested too deeply to be a box file") from err
    if not isinstance(content, dict):
        raise FormatError(
            f"{path}: expected a JSON object with 'mode' and 'boxes', got {type(content).__name__}"
        )
    if "boxes_3d" in content:
        content = _from_predictions(path, content)
    unknown = sorted(set(content) - set(JSON_KEYS))
    if unknown:
        raise FormatError(f"{path}: unknown key(s) {unknown}; a box file has {', '.join(JSON_KEYS)}")
    for key in ("mode", "boxes"):
        if key not in content:
            raise FormatError(f"{path}: no '{key}' key")
    mode = check_mode(content["mode"], f"{path}: mode ")
    boxes = _boxes(path, content["boxes"])
    if "columns" in content and len(boxes) and len(content["columns"]) != boxes.shape[1]:
        raise FormatError(
            f"{path}: 'columns' names {len(content['columns'])} columns, boxes have {boxes.shape[1]}"
        )
    if isinstance(content.get("columns"), list):
        check_column_order(f"{path}: 'columns'", content["columns"])
    labels = _labels(path, content.get("labels"), len(boxes))
    scores = _scores(path, content.get("scores"), len(boxes))
    meta = content.get("meta", {})
    if not isinstance(meta, dict):
        raise FormatError(f"{path}: 'meta' must be a JSON object")
    return BoxFile(boxes, mode, labels, scores, meta, path)


def _from_predictions(path: Path, content: dict[str, Any]) -> dict[str, Any]:
    """`pc3d infer`'s prediction keys as a box file's: labels named by `class_names`."""
    unknown = sorted(set(content) - set(PREDICTION_KEYS))
    if unknown:
        raise FormatError(
            f"{path}: unknown key(s) {unknown}; predictions (with 'boxes_3d') have {', '.join(PREDICTION_KEYS)}"
        )
    if "box_mode" not in content:
        raise FormatError(f"{path}: no 'box_mode' key (predictions with 'boxes_3d' need it)")
    out: dict[str, Any] = {"mode": content["box_mode"], "boxes": content["boxes_3d"]}
    out["meta"] = {"format": "pc3d infer predictions"}
    if "scores_3d" in content:
        out["scores"] = content["scores_3d"]
    labels, names = content.get("labels_3d"), content.get("class_names")
    if labels is not None and names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FormatError(f"{path}: 'class_names' must be a list of names")
        out["meta"]["class_names"] = names
        if isinstance(labels, list):
            bad = next(
                (i for i, lab in enumerate(labels) if not (type(lab) is int and 0 <= lab < len(names))), None
            )
            if bad is not None:
                raise FormatError(
                    f"{path}: labels_3d[{bad}] = {labels[bad]!r} does not index class_names ({len(names)} names)"
                )
            labels = [names[lab] for lab in labels]
    if labels is not None:
        out["labels"] = labels
    return out


def _boxes(path: Path, rows: Any) -> np.ndarray:
    if not isinstance(rows, list):
        raise FormatError(f"{path}: 'boxes' must be a list of rows")
    widths = {len(r) if isinstance(r, list) else -1 for r in rows}
    if -1 in widths:
        row = next(i for i, r in enumerate(rows) if not isinstance(r, list))
        raise FormatError(f"{path}: box {row} is not a list of numbers")
    if len(widths) > 1:
        first = len(rows[0])
        row = next(i for i, r in enumerate(rows) if len(r) != first)
        raise FormatError(
            f"{path}: box {row} has {len(rows[row])} values, box 0 has {first}; all rows need the same width"
        )
    if rows and min(widths) < 7:
        raise FormatError(
            f"{path}: boxes have {min(widths)} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    try:
        boxes = np.array(rows, dtype=np.float64).reshape(len(rows), -1 if rows else 7)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: 'boxes' holds a value that is not a number ({err})") from err
    return validate_boxes(path, boxes).astype(np.float32)


def _labels(path: Path, labels: Any, num_boxes: int) -> list[str | int] | None:
    if labels is None:
        return None
    if not isinstance(labels, list) or len(labels) != num_boxes:
        raise FormatError(f"{path}: 'labels' must be a list of {num_boxes} labels (one per box)")
    bad = next(
        (i for i, lab in enumerate(labels) if isinstance(lab, bool) or not isinstance(lab, (str, int))), None
    )
    if bad is not None:
        raise FormatError(f"{path}: label {bad} is {labels[bad]!r}; labels are strings or integers")
    return labels


def _scores(path: Path, scores: Any, num_boxes: int) -> np.ndarray | None:
    if scores is None:
        return None
    if not isinstance(scores, list) or len(scores) != num_boxes:
        raise FormatError(f"{path}: 'scores' must be a list of {num_boxes} numbers (one per box)")
    try:
        return np.array(scores, dtype=np.float32)  # null (a non-finite score) reads as NaN
    except (TypeError, ValueError) as err:
        raise FormatError(f"{path}: 'scores' holds a value that is not a number") from err


def encode_box_json(path: Path, boxes: np.ndarray, mode: str | None, data: BoxFile) -> str:
    """The text of a JSON box file: every key on its own line, one box per line (readable, and
    diffs stay small), each value written by `pc3d.io.jsonio.dumps`.

    Args:
        path: the file to write, for messages.
        boxes: validated `float32 [N, 7+C]`.
        mode: the checked mode.
        data: labels, scores and meta to write with the boxes.

    Raises:
        FormatError: no mode, or a `meta` value JSON cannot hold.
    """
    if mode is None:
        raise FormatError(f"{path}: a JSON box file needs a mode")
    content: dict[str, Any] = {"mode": mode, "columns": box_columns(boxes.shape[1])}
    content["boxes"] = [[float32_number(v) for v in row] for row in boxes.tolist()]
    if data.labels is not None:
        content["labels"] = [lab if isinstance(lab, str) else int(lab) for lab in data.labels]
    if data.scores is not None:
        content["scores"] = [float32_number(float(s)) for s in np.asarray(data.scores, np.float32)]
    parts = []
    for key, value in content.items():
        if key == "boxes" and value:
            rows = ",\n".join("    " + dumps(row) for row in value)
            parts.append(f'  "boxes": [\n{rows}\n  ]')
        else:
            parts.append(f"  {dumps(key)}: {dumps(value)}")
    if data.meta:
        items = ",\n".join(f"    {dumps(str(k))}: {_meta_value(path, k, v)}" for k, v in data.meta.items())
        parts.append(f'  "meta": {{\n{items}\n  }}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _meta_value(path: Path, key: object, value: object) -> str:
    try:
        return dumps(value)
    except TypeError as err:
        raise FormatError(f"{path}: meta key {key!r}: {err}") from err
