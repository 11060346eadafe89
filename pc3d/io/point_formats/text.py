"""Whitespace-separated numbers, one point per line: the `ascii` bodies of PCD and PLY files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.values import is_number

__all__ = ["format_ascii_rows", "line_of", "parse_ascii_rows"]


def line_of(raw: bytes, offset: int) -> int:
    """The 1-based line of `raw` on which byte `offset` lies."""
    return raw.count(b"\n", 0, offset) + 1


def parse_ascii_rows(path: Path, body: bytes, num_rows: int, per_row: int, first_line: int) -> np.ndarray:
    """`float64 ndarray[num_rows, per_row]` from whitespace-separated text, one row per line.

    Args:
        path: the file, for messages.
        body: the text after the header.
        num_rows: the number of rows the header announces.
        per_row: values per row.
        first_line: the line number of the body's first line in the file.

    Raises:
        FormatError: a row of the wrong length, a token that is not a number, or fewer or more
            rows than announced, naming the file and the line.
    """
    text = body.decode("ascii", errors="replace")
    if num_rows == 0 and not text.strip():
        return np.zeros((0, per_row), np.float64)
    if num_rows > 0:
        try:
            # numpy's C parser; any irregular file falls through to the diagnosis below.
            values = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            values = None
        if values is not None and values.shape == (num_rows, per_row):
            return values
    return _parse_rows_slowly(path, text, num_rows, per_row, first_line)


def _parse_rows_slowly(path: Path, text: str, num_rows: int, per_row: int, first_line: int) -> np.ndarray:
    # Line by line, for files numpy's parser refuses: names the first bad line.
    rows = [line for line in enumerate(text.splitlines(), start=first_line) if line[1].strip()]
    parsed: list[list[float]] = []
    for line_no, line in rows[:num_rows]:
        values = line.split()
        if len(values) != per_row:
            raise FormatError(f"{path}: line {line_no} has {len(values)} values, expected {per_row}")
        try:
            parsed.append([float(value) for value in values])
        except ValueError as err:
            bad = next(value for value in values if not is_number(value))
            raise FormatError(f"{path}: line {line_no}: {bad!r} is not a number") from err
    if len(rows) < num_rows:
        raise FormatError(
            f"{path}: truncated data: the header announces {num_rows} points, the file holds {len(rows)}"
        )
    if len(rows) > num_rows:
        raise FormatError(
            f"{path}: line {rows[num_rows][0]}: data goes on after the {num_rows} points the header announces"
        )
    return np.array(parsed, dtype=np.float64).reshape(num_rows, per_row)


def format_ascii_rows(columns: list[tuple[np.ndarray, str]], num_rows: int) -> bytes:
    """Rows of text, one per point.

    `%.9g` keeps every float32 value exactly; integer columns are printed with `%d`.

    Args:
        columns: `(values [N], printf format)` of each column.
        num_rows: `N`.

    Returns:
        The rows, each ending with a newline (nothing for no rows).
    """
    if num_rows == 0:
        return b""
    buffer = io.BytesIO()
    matrix = np.stack([c.astype(np.float64) for c, _ in columns], axis=1)
    np.savetxt(buffer, matrix, fmt=[fmt for _, fmt in columns], delimiter=" ")
    return buffer.getvalue()
