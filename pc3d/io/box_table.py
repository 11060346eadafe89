"""CSV (`.csv`, comma-separated) and TXT (`.txt`, whitespace-separated) box files: an optional
`# mode: lidar` comment, an optional header row naming the columns (a column called `label`
holds labels, one called `score` scores; the others are box values, in order), then one box per
line::

    # mode: lidar
    x,y,z,x_size,y_size,z_size,yaw,label,score
    10.0,2.0,-1.6,3.9,1.6,1.5,0.3,Car,0.93
"""

from __future__ import annotations

import csv
from pathlib import Path

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
from pc3d.io.values import is_number

__all__ = ["encode_box_table", "read_box_table"]

# (line number, tokens) of each data line.
_Rows = list[tuple[int, list[str]]]


def read_box_table(path: Path, delimiter: str | None) -> BoxFile:
    """Read a CSV or whitespace-separated box table.

    Args:
        path: the file.
        delimiter: `","` for CSV, None for white space.

    Returns:
        The boxes, with the mode, labels and scores the table holds.

    Raises:
        FormatError: rows of different widths, fewer than 7 box columns, a value that is not a
            number, a row mixing numbers and text without a header; naming the file and line.
    """
    mode, body = _split_lines(path, delimiter)
    header: list[str] | None = None
    if body and not any(is_number(t) for t in body[0][1]):
        header = [t.lower() for t in body.pop(0)[1]]
    elif body and not all(is_number(t) for t in body[0][1]):
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
    if header:
        check_column_order(str(path), [header[i] for i in value_cols])
    if len(value_cols) < 7:
        raise FormatError(
            f"{path}: boxes have {len(value_cols)} values per row, expected at least 7 "
            f"(x, y, z, x_size, y_size, z_size, yaw)"
        )
    numeric = value_cols + ([score_col] if score_col is not None else [])
    for line_no, tokens in body:
        for col in numeric:
            if not is_number(tokens[col]):
                name = header[col] if header else f"column {col}"
                raise FormatError(f"{path}: line {line_no}: {name} value {tokens[col]!r} is not a number")
    table = np.array([[tokens[c] for c in numeric] for _, tokens in body], dtype=np.float64)
    table = table.reshape(len(body), len(numeric))
    boxes = validate_boxes(path, table[:, : len(value_cols)], [f"line {n}" for n, _ in body]).astype(
        np.float32
    )
    labels: list[str | int] | None = (
        [tokens[label_col] for _, tokens in body] if label_col is not None else None
    )
    scores = table[:, -1].astype(np.float32) if score_col is not None else None
    return BoxFile(boxes, mode, labels, scores, {}, path)


def _split_lines(path: Path, delimiter: str | None) -> tuple[str | None, _Rows]:
    """The `# mode:` comment's mode (or None) and the tokens of every data line."""
    mode: str | None = None
    body: _Rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from err
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, _, value = stripped[1:].partition(":")
            if key.strip().lower() == "mode":
                mode = check_mode(value.strip(), f"{path}: line {line_no}: mode ")
            continue
        if delimiter is None:
            tokens = stripped.split()
        else:
            tokens = [t.strip() for t in next(csv.reader([stripped], delimiter=delimiter))]
        body.append((line_no, tokens))
    return mode, body


def encode_box_table(path: Path, boxes: np.ndarray, mode: str | None, data: BoxFile, sep: str) -> str:
    """The text of a box table: `# mode:` line, header row, one box per line.

    Args:
        path: the file to write, for messages.
        boxes: validated `float32 [N, 7+C]`.
        mode: the checked mode, or None.
        data: labels and scores to write with the boxes.
        sep: `","` (CSV) or `" "` (TXT).

    Raises:
        FormatError: a label that the table cannot hold (empty, containing the separator or
            white space, or starting with `#`).
    """
    header = box_columns(boxes.shape[1])
    columns: list[list[str]] = [[repr(float32_number(v)) for v in row] for row in boxes.tolist()]
    if data.labels is not None:
        header.append("label")
        for row, label in zip(columns, data.labels, strict=True):
            text = str(label)
            if (
                not text
                or sep in text
                or text.startswith("#")
                or (sep == " " and any(c.isspace() for c in text))
            ):
                raise FormatError(f"{path}: label {text!r} cannot be written to a {path.suffix} table")
            row.append(text)
    if data.scores is not None:
        header.append("score")
        for row, score in zip(columns, np.asarray(data.scores, np.float32).tolist(), strict=True):
            row.append(repr(float32_number(score)))
    lines = ([f"# mode: {mode}"] if mode else []) + [sep.join(header)] + [sep.join(row) for row in columns]
    return "\n".join(lines) + "\n"
