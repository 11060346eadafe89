"""PCD point clouds (PCL's format): `DATA ascii`, `binary` and `binary_compressed` are read,
`ascii` and `binary` written.

Field names come from `FIELDS`; a packed `rgb`/`rgba` field becomes `red green blue (alpha)`
columns, and PCL's padding fields (named `_`) are dropped. On writing, integer colours in
0-255 are packed into one `rgb` field, as PCL and Open3D expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.point_formats.fields import COLOUR_FIELDS, check_header_names, colour_columns
from pc3d.io.point_formats.lzf import lzf_decompress
from pc3d.io.point_formats.text import format_ascii_rows, line_of, parse_ascii_rows

__all__ = ["PcdField", "encode_pcd", "parse_pcd_header", "read_pcd"]

_PCD_TYPES: dict[tuple[str, int], str] = {
    ("F", 4): "f4", ("F", 8): "f8",
    ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
    ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
}  # fmt: skip
_PCD_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
# Header key -> (line number, values).
_Entries = dict[str, tuple[int, list[str]]]


@dataclass(frozen=True)
class PcdField:
    """One `FIELDS` entry of a PCD header.

    Attributes:
        name: the field name (PCL's padding `_` becomes a unique `_pad<i>`).
        size: bytes per value.
        type: `F` (float), `U` (unsigned) or `I` (signed integer).
        count: values per point.
    """

    name: str
    size: int
    type: str
    count: int

    @property
    def dtype(self) -> str:
        """The little-endian numpy type code of one value."""
        return "<" + _PCD_TYPES[(self.type, self.size)]


# ------------------------------------------------------------------------------------ read


def read_pcd(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a PCD cloud.

    Returns:
        `(float32 [N, C], field names)` in the file's field order.

    Raises:
        FormatError: a malformed header or truncated or corrupt data, naming the file (and the
            header line).
    """
    raw = path.read_bytes()
    fields, num_points, encoding, offset = parse_pcd_header(path, raw)
    per_point = sum(f.count for f in fields)
    body = raw[offset:]
    if encoding == "ascii":
        values = parse_ascii_rows(path, body, num_points, per_point, first_line=line_of(raw, offset))
        columns = _split_ascii_columns(values, fields)
    elif encoding == "binary":
        dtype = np.dtype([(f"c{i}", f.dtype, (f.count,)) for i, f in enumerate(fields)])
        needed = num_points * dtype.itemsize
        if len(body) < needed:
            raise FormatError(
                f"{path}: truncated binary data: POINTS {num_points} x {dtype.itemsize} bytes needs "
                f"{needed} bytes after the header, found {len(body)}"
            )
        records = np.frombuffer(body, dtype=dtype, count=num_points)
        columns = [records[f"c{i}"] for i in range(len(fields))]
    else:
        columns = _read_compressed(path, body, fields, num_points)
    return _columns_to_array(fields, columns, num_points)


def parse_pcd_header(path: Path, raw: bytes) -> tuple[list[PcdField], int, str, int]:
    """Parse the header of a PCD file.

    Args:
        path: the file, for messages.
        raw: its bytes.

    Returns:
        The fields, the number of points, the `DATA` encoding (lower case) and the byte offset
        of the data.

    Raises:
        FormatError: a missing, repeated, unknown or inconsistent header line, naming it.
    """
    entries, offset = _header_entries(path, raw)
    fields = _header_fields(path, entries)
    width = _header_integers(path, entries, "WIDTH")
    height = _header_integers(path, entries, "HEIGHT")
    if len(width) != 1 or len(height) != 1:
        raise FormatError(f"{path}: WIDTH and HEIGHT must each hold one integer")
    num_points = width[0] * height[0]
    if "POINTS" in entries:
        points = _header_integers(path, entries, "POINTS")
        if len(points) != 1 or points[0] != num_points:
            raise FormatError(
                f"{path}: header line {entries['POINTS'][0]}: POINTS {' '.join(map(str, points))} "
                f"disagrees with WIDTH x HEIGHT = {num_points}"
            )
    data_line, data = entries["DATA"]
    if len(data) != 1 or data[0].lower() not in ("ascii", "binary", "binary_compressed"):
        raise FormatError(
            f"{path}: header line {data_line}: DATA {' '.join(data)!r} is not ascii, binary or binary_compressed"
        )
    return fields, num_points, data[0].lower(), offset


def _header_entries(path: Path, raw: bytes) -> tuple[_Entries, int]:
    """The header's `KEY values` lines up to `DATA`, and the byte offset after that line."""
    entries: _Entries = {}
    pos, line_no = 0, 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise FormatError(f"{path}: the PCD header ends at line {line_no + 1} without a DATA line")
        line_no += 1
        try:
            line = raw[pos:end].decode("ascii").strip()
        except UnicodeDecodeError as err:
            raise FormatError(f"{path}: header line {line_no} is not ASCII text; not a PCD file?") from err
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        if key not in _PCD_KEYS:
            raise FormatError(f"{path}: header line {line_no}: unknown PCD header key {key!r}")
        if key in entries:
            raise FormatError(
                f"{path}: header line {line_no}: {key} repeated (first at line {entries[key][0]})"
            )
        entries[key] = (line_no, values)
        if key == "DATA":
            return entries, pos


def _header_entry(path: Path, entries: _Entries, key: str) -> tuple[int, list[str]]:
    if key not in entries:
        raise FormatError(f"{path}: the PCD header has no {key} line")
    return entries[key]


def _header_integers(path: Path, entries: _Entries, key: str) -> list[int]:
    line, values = _header_entry(path, entries, key)
    try:
        numbers = [int(v) for v in values]
    except ValueError as err:
        raise FormatError(f"{path}: header line {line}: {key} values {values} are not all integers") from err
    if any(n < 0 for n in numbers):
        raise FormatError(f"{path}: header line {line}: {key} values {values} must not be negative")
    return numbers


def _header_fields(path: Path, entries: _Entries) -> list[PcdField]:
    """The fields described by `FIELDS`, `SIZE`, `TYPE` and `COUNT` (default 1 each)."""
    _, names = _header_entry(path, entries, "FIELDS")
    if not names:
        raise FormatError(f"{path}: header line {entries['FIELDS'][0]}: FIELDS names no field")
    sizes = _header_integers(path, entries, "SIZE")
    type_line, types = _header_entry(path, entries, "TYPE")
    counts = _header_integers(path, entries, "COUNT") if "COUNT" in entries else [1] * len(names)
    for key, values in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(values) != len(names):
            raise FormatError(
                f"{path}: header line {entries[key][0] if key in entries else type_line}: {key} has "
                f"{len(values)} entries but FIELDS names {len(names)} fields"
            )
    fields: list[PcdField] = []
    for i, (name, size, kind, count) in enumerate(zip(names, sizes, types, counts, strict=True)):
        if (kind.upper(), size) not in _PCD_TYPES:
            raise FormatError(
                f"{path}: header line {type_line}: field {name!r} has TYPE {kind} with SIZE {size}, "
                "which is not a PCD number type (F 4/8, U or I 1/2/4/8)"
            )
        if count < 1:
            raise FormatError(f"{path}: header line {entries['COUNT'][0]}: field {name!r} has COUNT {count}")
        # PCL pads records with fields named "_"; give them unique names, they are dropped later.
        fields.append(PcdField(name if name != "_" else f"_pad{i}", size, kind.upper(), count))
    return fields


def _split_ascii_columns(values: np.ndarray, fields: list[PcdField]) -> list[np.ndarray]:
    columns, start = [], 0
    for field in fields:
        block = values[:, start : start + field.count]
        start += field.count
        if field.type == "F":
            columns.append(block.astype(field.dtype))
        else:
            columns.append(np.round(block).astype(field.dtype))
    return columns


def _read_compressed(path: Path, body: bytes, fields: list[PcdField], num_points: int) -> list[np.ndarray]:
    if len(body) < 8:
        raise FormatError(f"{path}: truncated binary_compressed data: no size header after DATA")
    compressed_size, raw_size = np.frombuffer(body[:8], dtype="<u4").tolist()
    expected = num_points * sum(f.size * f.count for f in fields)
    if raw_size != expected:
        raise FormatError(
            f"{path}: binary_compressed data says {raw_size} uncompressed bytes, the header's fields "
            f"and POINTS need {expected}"
        )
    if len(body) - 8 < compressed_size:
        raise FormatError(
            f"{path}: truncated binary_compressed data: {compressed_size} compressed bytes announced, "
            f"{len(body) - 8} present"
        )
    data = lzf_decompress(body[8 : 8 + compressed_size], raw_size, path)
    # The uncompressed block stores each field for all points before the next field.
    columns, offset = [], 0
    for field in fields:
        count = num_points * field.count
        columns.append(
            np.frombuffer(data, dtype=field.dtype, count=count, offset=offset).reshape(
                num_points, field.count
            )
        )
        offset += count * field.size
    return columns


def _columns_to_array(
    fields: list[PcdField], columns: list[np.ndarray], num_points: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for field, column in zip(fields, columns, strict=True):
        column = column.reshape(num_points, field.count)
        if field.name.startswith("_pad"):
            continue
        if field.name in ("rgb", "rgba") and field.size == 4 and field.count == 1:
            # Colour packed into 4 bytes (as a float by PCL, as a uint by Open3D): unpack the bits.
            bits = column[:, 0].view("<u4") if column.dtype.kind == "f" else column[:, 0].astype("<u4")
            channels = [(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF]
            names += list(COLOUR_FIELDS)
            if field.name == "rgba":
                channels.append((bits >> 24) & 0xFF)
                names.append("alpha")
            blocks.append(np.stack(channels, axis=1).astype(np.float32))
            continue
        names += [field.name] if field.count == 1 else [f"{field.name}_{i}" for i in range(field.count)]
        blocks.append(column.astype(np.float32))
    array = np.concatenate(blocks, axis=1) if blocks else np.zeros((num_points, 0), np.float32)
    return array, tuple(names)


# ----------------------------------------------------------------------------------- write


def encode_pcd(array: np.ndarray, names: Sequence[str], encoding: Literal["binary", "ascii"]) -> bytes:
    """The bytes of a PCD v0.7 file holding `array` (`float32 [N, C]`, columns named `names`).

    Columns are written as `F 4`, except integer colours in 0-255, which become one packed
    `U 4` `rgb` field.

    Args:
        array: the points.
        names: the name of each column.
        encoding: `DATA binary` or `DATA ascii`.

    Returns:
        The file's bytes.

    Raises:
        FormatError: a field name a PCD header cannot hold.
    """
    check_header_names(names)
    colour = colour_columns(array, names)
    # (name, numpy type, PCD TYPE, values)
    columns: list[tuple[str, str, str, np.ndarray]] = []
    for i, name in enumerate(names):
        if colour is not None and i in colour:
            if i == colour[0]:
                rgb = array[:, colour].astype(np.uint32)
                packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
                columns.append(("rgb", "<u4", "U", packed.astype("<u4")))
            continue
        columns.append((name, "<f4", "F", array[:, i]))
    n = array.shape[0]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format (written by pc3d)\n"
        "VERSION 0.7\n"
        f"FIELDS {' '.join(c[0] for c in columns)}\n"
        f"SIZE {' '.join('4' for _ in columns)}\n"
        f"TYPE {' '.join(c[2] for c in columns)}\n"
        f"COUNT {' '.join('1' for _ in columns)}\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {encoding}\n"
    ).encode("ascii")
    if encoding == "ascii":
        return header + format_ascii_rows([(c[3], "%d" if c[2] == "U" else "%.9g") for c in columns], n)
    records = np.empty(n, dtype=[(f"c{i}", c[1]) for i, c in enumerate(columns)])
    for i, c in enumerate(columns):
        records[f"c{i}"] = c[3]
    return header + records.tobytes()
