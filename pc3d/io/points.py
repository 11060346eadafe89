"""Point-cloud files: KITTI `.bin`, `.npy`, `.pcd` and `.ply`, read and written by field name.

A point cloud is read into a `PointCloudData`: one `float32` array `[N, C]` whose first three
columns are always `x, y, z`, plus the name of every column. `load_points` wraps that into a
pc3d points structure (`LiDARPoints` by default).

Formats:

| extension | read | write | field names |
|---|---|---|---|
| `.bin` | raw little-endian float32 records, `num_features` per point (default 4) | same | `x y z intensity` then `feature_4`, `feature_5`, ... (not stored) |
| `.npy` | `[N, C>=3]` numeric array, or a 1-D structured array with named fields | `[N, C]` float32 | as `.bin` for plain arrays (not stored) |
| `.pcd` | `DATA ascii`, `binary` and `binary_compressed` (LZF) | `ascii` and `binary` | from `FIELDS`; packed `rgb`/`rgba` become `red green blue (alpha)` |
| `.ply` | `ascii`, `binary_little_endian`, `binary_big_endian`; the `vertex` element | `ascii` and `binary_little_endian` | vertex property names |

Non-finite coordinates: every reader applies `nan_policy` to the `x, y, z` columns
(other columns are never inspected): `"drop"` (default) removes those points and emits a
`NonFinitePointsWarning` with the count and the file, `"raise"` raises a `FormatError` naming the
file and the first bad point, `"keep"` returns them untouched. An empty cloud is valid everywhere.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from pc3d.errors import FormatError

if TYPE_CHECKING:
    import torch

    from pc3d.structures import BasePoints

NanPolicy = Literal["drop", "raise", "keep"]
PointEncoding = Literal["binary", "ascii"]
POINT_EXTENSIONS: tuple[str, ...] = (".bin", ".npy", ".pcd", ".ply")
# Columns of a KITTI-style record, in order; more columns are named feature_<index>.
_DEFAULT_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity")
_COLOUR_FIELDS: tuple[str, ...] = ("red", "green", "blue")


class NonFinitePointsWarning(UserWarning):
    """Points with NaN or infinite coordinates were dropped while reading a file."""


@dataclass(frozen=True)
class PointCloudData:
    """The columns of a point-cloud file.

    Attributes:
        array: `float32 ndarray[N, C]`, columns 0-2 are `x, y, z`.
        fields: the name of each of the `C` columns.
        path: the file it was read from, if any.
    """

    array: np.ndarray
    fields: tuple[str, ...]
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != 2 or self.array.shape[1] != len(self.fields):
            raise FormatError(
                f"{self._where()}point array of shape {tuple(self.array.shape)} does not match "
                f"{len(self.fields)} field names {list(self.fields)}"
            )
        if tuple(self.fields[:3]) != ("x", "y", "z"):
            raise FormatError(f"{self._where()}the first fields must be x, y, z, got {list(self.fields)}")

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""

    @property
    def num_points(self) -> int:
        return int(self.array.shape[0])

    def column(self, name: str) -> np.ndarray:
        """`float32 ndarray[N]`: the column called `name`."""
        if name not in self.fields:
            raise KeyError(f"no field {name!r}; fields are {list(self.fields)}")
        return self.array[:, self.fields.index(name)]


def default_fields(num_columns: int) -> tuple[str, ...]:
    """Names of the columns of a `.bin`/plain `.npy` cloud: `x y z intensity feature_4 ...`."""
    if num_columns < 3:
        raise FormatError(f"a point needs at least 3 columns (x, y, z), got {num_columns}")
    return _DEFAULT_FIELDS[:num_columns] + tuple(f"feature_{i}" for i in range(4, num_columns))


# ----------------------------------------------------------------------------------------------
# reading


def read_point_file(
    path: str | os.PathLike[str],
    num_features: int | None = None,
    nan_policy: NanPolicy = "drop",
) -> PointCloudData:
    """Read a `.bin`, `.npy`, `.pcd` or `.ply` point cloud.

    Args:
        path: the file; its extension chooses the format.
        num_features: float32 values per point of a `.bin` file (default 4). Other formats
            describe themselves; for them a given value is checked against the file.
        nan_policy: what to do with points whose x, y or z is NaN or infinite (see module doc).

    Returns:
        `PointCloudData` with a `float32 [N, C]` array, x, y, z first.

    Raises:
        FormatError: unknown extension or a malformed file (the message names the file and what
            is wrong); FileNotFoundError when the file does not exist.
    """
    path = Path(path)
    if nan_policy not in ("drop", "raise", "keep"):
        raise ValueError(f"nan_policy must be 'drop', 'raise' or 'keep', got {nan_policy!r}")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        array, fields = _read_bin(path, 4 if num_features is None else num_features)
    elif suffix == ".npy":
        array, fields = _read_npy(path)
    elif suffix == ".pcd":
        array, fields = _read_pcd(path)
    elif suffix == ".ply":
        array, fields = _read_ply(path)
    else:
        raise FormatError(
            f"{path}: unknown point-cloud extension {path.suffix!r}; "
            f"supported: {', '.join(POINT_EXTENSIONS)}"
        )
    array, fields = _xyz_first(path, array, fields)
    if num_features is not None and suffix != ".bin" and array.shape[1] != num_features:
        raise FormatError(
            f"{path}: has {array.shape[1]} values per point ({', '.join(fields)}), "
            f"num_features={num_features} was asked for"
        )
    array = _apply_nan_policy(path, array, nan_policy)
    return PointCloudData(np.ascontiguousarray(array, dtype=np.float32), fields, path)


def _xyz_first(path: Path, array: np.ndarray, fields: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    missing = [name for name in ("x", "y", "z") if name not in fields]
    if missing:
        raise FormatError(f"{path}: no field {', '.join(missing)} among the fields {list(fields)}")
    if len(set(fields)) != len(fields):
        repeated = sorted({name for name in fields if fields.count(name) > 1})
        raise FormatError(f"{path}: field name(s) {repeated} appear more than once")
    order = [fields.index(n) for n in ("x", "y", "z")]
    order += [i for i, name in enumerate(fields) if name not in ("x", "y", "z")]
    if order == list(range(len(fields))):
        return array, fields
    return array[:, order], tuple(fields[i] for i in order)


def _apply_nan_policy(path: Path, array: np.ndarray, nan_policy: NanPolicy) -> np.ndarray:
    # Whole-array check first: a contiguous reduction is ~40x cheaper than the per-row one.
    if nan_policy == "keep" or array.shape[0] == 0 or np.isfinite(array).all():
        return array
    finite = np.isfinite(array[:, :3]).all(axis=1)
    num_bad = int(array.shape[0] - np.count_nonzero(finite))
    if num_bad == 0:
        return array
    if nan_policy == "raise":
        first = int(np.argmin(finite))
        raise FormatError(
            f"{path}: {num_bad} of {array.shape[0]} points have NaN or infinite x/y/z; the first "
            f"is point {first} (0-based): {array[first, :3].tolist()}"
        )
    warnings.warn(
        f"{path}: dropped {num_bad} of {array.shape[0]} points with NaN or infinite x/y/z "
        f"(nan_policy='drop'; use 'keep' or 'raise' to change this)",
        NonFinitePointsWarning,
        stacklevel=3,
    )
    return array[finite]


def _read_bin(path: Path, num_features: int) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 3:
        raise FormatError(f"{path}: num_features must be an integer >= 3 (x, y, z, ...), got {num_features!r}")
    size = path.stat().st_size
    record = 4 * num_features
    if size % record:
        fitting = [n for n in range(3, 9) if size % (4 * n) == 0]
        hint = f"; it would fit {fitting} float32 values per point" if fitting else ""
        raise FormatError(
            f"{path}: size {size} bytes is not a multiple of the record size {record} bytes "
            f"({num_features} float32 values per point){hint}"
        )
    array = np.fromfile(path, dtype="<f4").reshape(-1, num_features)
    return array, default_fields(num_features)


def _read_npy(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"{path}: not a readable .npy array ({err})") from err
    if raw.dtype.names:
        if raw.ndim != 1:
            raise FormatError(f"{path}: a structured point array must be 1-D, got shape {raw.shape}")
        fields = _expand_structured_names(raw.dtype)
        columns = [np.asarray(raw[name], dtype=np.float32).reshape(raw.shape[0], -1) for name in raw.dtype.names]
        array = np.concatenate(columns, axis=1) if columns else np.zeros((raw.shape[0], 0), np.float32)
        return array, fields
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.number):
        raise FormatError(
            f"{path}: expected a numeric point array of shape [N, C>=3], got {raw.dtype} {raw.shape}"
        )
    if raw.shape[1] < 3:
        raise FormatError(f"{path}: points need at least 3 columns (x, y, z), got shape {raw.shape}")
    return raw.astype(np.float32, copy=False), default_fields(raw.shape[1])


def _expand_structured_names(dtype: np.dtype) -> tuple[str, ...]:
    names: list[str] = []
    for name in dtype.names or ():
        shape = dtype.fields[name][0].shape
        count = int(np.prod(shape)) if shape else 1
        names += [name] if count == 1 else [f"{name}_{i}" for i in range(count)]
    return tuple(names)


# ---- PCD ---------------------------------------------------------------------------------------

_PCD_TYPES: dict[tuple[str, int], str] = {
    ("F", 4): "f4", ("F", 8): "f8",
    ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
    ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
}  # fmt: skip
_PCD_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")


@dataclass(frozen=True)
class _PcdField:
    name: str
    size: int
    type: str
    count: int

    @property
    def dtype(self) -> str:
        return "<" + _PCD_TYPES[(self.type, self.size)]


def _read_pcd(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    raw = path.read_bytes()
    fields, num_points, encoding, offset = _parse_pcd_header(path, raw)
    per_point = sum(f.count for f in fields)
    body = raw[offset:]
    if encoding == "ascii":
        values = _parse_ascii_rows(path, body, num_points, per_point, first_line=_line_of(raw, offset))
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
        columns = _read_pcd_compressed(path, body, fields, num_points)
    return _pcd_columns_to_array(path, fields, columns, num_points)


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _parse_pcd_header(path: Path, raw: bytes) -> tuple[list[_PcdField], int, str, int]:
    """Returns the fields, the number of points, the DATA encoding and the byte offset of the data."""
    entries: dict[str, tuple[int, list[str]]] = {}
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
            raise FormatError(f"{path}: header line {line_no}: {key} repeated (first at line {entries[key][0]})")
        entries[key] = (line_no, values)
        if key == "DATA":
            break

    def need(key: str) -> tuple[int, list[str]]:
        if key not in entries:
            raise FormatError(f"{path}: the PCD header has no {key} line")
        return entries[key]

    def integers(key: str) -> list[int]:
        line, values = need(key)
        try:
            numbers = [int(v) for v in values]
        except ValueError as err:
            raise FormatError(f"{path}: header line {line}: {key} values {values} are not all integers") from err
        if any(n < 0 for n in numbers):
            raise FormatError(f"{path}: header line {line}: {key} values {values} must not be negative")
        return numbers

    _, names = need("FIELDS")
    if not names:
        raise FormatError(f"{path}: header line {entries['FIELDS'][0]}: FIELDS names no field")
    sizes = integers("SIZE")
    type_line, types = need("TYPE")
    counts = integers("COUNT") if "COUNT" in entries else [1] * len(names)
    for key, values in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(values) != len(names):
            raise FormatError(
                f"{path}: header line {entries[key][0] if key in entries else type_line}: {key} has "
                f"{len(values)} entries but FIELDS names {len(names)} fields"
            )
    fields: list[_PcdField] = []
    for i, (name, size, kind, count) in enumerate(zip(names, sizes, types, counts, strict=True)):
        if (kind.upper(), size) not in _PCD_TYPES:
            raise FormatError(
                f"{path}: header line {type_line}: field {name!r} has TYPE {kind} with SIZE {size}, "
                "which is not a PCD number type (F 4/8, U or I 1/2/4/8)"
            )
        if count < 1:
            raise FormatError(f"{path}: header line {entries['COUNT'][0]}: field {name!r} has COUNT {count}")
        # PCL pads records with fields named "_"; give them unique names, they are dropped later.
        fields.append(_PcdField(name if name != "_" else f"_pad{i}", size, kind.upper(), count))
    width = integers("WIDTH")
    height = integers("HEIGHT")
    if len(width) != 1 or len(height) != 1:
        raise FormatError(f"{path}: WIDTH and HEIGHT must each hold one integer")
    num_points = width[0] * height[0]
    if "POINTS" in entries:
        points = integers("POINTS")
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
    return fields, num_points, data[0].lower(), pos


def _parse_ascii_rows(path: Path, body: bytes, num_rows: int, per_row: int, first_line: int) -> np.ndarray:
    """`float64 ndarray[num_rows, per_row]` from whitespace-separated text, one row per line."""
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
    # Slow path, only for broken files: find the first bad line to name it.
    rows = [line for line in enumerate(text.splitlines(), start=first_line) if line[1].strip()]
    for line_no, line in rows[:num_rows]:
        values = line.split()
        if len(values) != per_row:
            raise FormatError(f"{path}: line {line_no} has {len(values)} values, expected {per_row}")
        for value in values:
            try:
                float(value)
            except ValueError as err:
                raise FormatError(f"{path}: line {line_no}: {value!r} is not a number") from err
    if len(rows) < num_rows:
        raise FormatError(
            f"{path}: truncated data: the header announces {num_rows} points, the file holds {len(rows)}"
        )
    raise FormatError(
        f"{path}: line {rows[num_rows][0]}: data goes on after the {num_rows} points the header announces"
    )


def _split_ascii_columns(values: np.ndarray, fields: list[_PcdField]) -> list[np.ndarray]:
    columns, start = [], 0
    for field in fields:
        block = values[:, start : start + field.count]
        start += field.count
        if field.type == "F":
            columns.append(block.astype(field.dtype))
        else:
            columns.append(np.round(block).astype(field.dtype))
    return columns


def _read_pcd_compressed(path: Path, body: bytes, fields: list[_PcdField], num_points: int) -> list[np.ndarray]:
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
        columns.append(np.frombuffer(data, dtype=field.dtype, count=count, offset=offset).reshape(num_points, field.count))
        offset += count * field.size
    return columns


def lzf_decompress(src: bytes, size: int, path: Path | None = None) -> bytes:
    """Decompress LZF data (the codec of PCD `binary_compressed`) into exactly `size` bytes.

    A loop over LZF tokens (each covers 1-264 bytes), only used for that rare PCD variant.
    """
    out = bytearray(size)
    ip, op, end = 0, 0, len(src)
    where = f"{path}: " if path is not None else ""
    while ip < end:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            length = ctrl + 1
            if ip + length > end or op + length > size:
                raise FormatError(f"{where}corrupt LZF data: literal run past the end at byte {ip - 1}")
            out[op : op + length] = src[ip : ip + length]
            ip += length
            op += length
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= end:
                raise FormatError(f"{where}corrupt LZF data: truncated back reference")
            length += src[ip]
            ip += 1
        if ip >= end:
            raise FormatError(f"{where}corrupt LZF data: truncated back reference")
        length += 2
        ref = op - ((ctrl & 0x1F) << 8) - src[ip] - 1
        ip += 1
        if ref < 0 or op + length > size:
            raise FormatError(f"{where}corrupt LZF data: back reference out of range at byte {ip - 2}")
        if ref + length <= op:
            out[op : op + length] = out[ref : ref + length]
        else:  # the copy overlaps its own output: it repeats the last (op - ref) bytes
            period = bytes(out[ref:op])
            out[op : op + length] = (period * (length // len(period) + 1))[:length]
        op += length
    if op != size:
        raise FormatError(f"{where}corrupt or truncated LZF data: {op} bytes decompressed, {size} expected")
    return bytes(out)


def _pcd_columns_to_array(
    path: Path, fields: list[_PcdField], columns: list[np.ndarray], num_points: int
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
            names += list(_COLOUR_FIELDS)
            if field.name == "rgba":
                channels.append((bits >> 24) & 0xFF)
                names.append("alpha")
            blocks.append(np.stack(channels, axis=1).astype(np.float32))
            continue
        names += [field.name] if field.count == 1 else [f"{field.name}_{i}" for i in range(field.count)]
        blocks.append(column.astype(np.float32))
    array = np.concatenate(blocks, axis=1) if blocks else np.zeros((num_points, 0), np.float32)
    return array, tuple(names)


# ---- PLY ---------------------------------------------------------------------------------------

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class _PlyElement:
    name: str
    count: int
    line: int
    properties: list[tuple[str, str]]  # (name, numpy type code)
    has_list: bool = False


def _read_ply(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    raw = path.read_bytes()
    elements, encoding, offset = _parse_ply_header(path, raw)
    index = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if index is None:
        raise FormatError(f"{path}: the PLY header declares no 'vertex' element")
    vertex = elements[index]
    if vertex.has_list:
        raise FormatError(f"{path}: header line {vertex.line}: list properties in 'vertex' are not supported")
    names = tuple(name for name, _ in vertex.properties)
    if encoding == "ascii":
        text = raw[offset:].decode("ascii", errors="replace")
        skip = sum(e.count for e in elements[:index])
        lines = text.splitlines()
        first_line = _line_of(raw, offset)
        if len(lines) < skip + vertex.count:
            raise FormatError(
                f"{path}: truncated data: the header announces {vertex.count} vertices, "
                f"the file holds {max(0, len(lines) - skip)}"
            )
        body = "\n".join(lines[skip : skip + vertex.count]).encode()
        values = _parse_ascii_rows(path, body, vertex.count, len(names), first_line + skip)
        return values.astype(np.float32), names
    order = "<" if encoding == "binary_little_endian" else ">"
    start = offset
    for element in elements[:index]:
        if element.has_list:
            raise FormatError(
                f"{path}: binary element {element.name!r} with list properties comes before 'vertex'; "
                "not supported"
            )
        start += element.count * np.dtype([(n, order + t) for n, t in element.properties]).itemsize
    dtype = np.dtype([(n, order + t) for n, t in vertex.properties])
    needed = vertex.count * dtype.itemsize
    if len(raw) - start < needed:
        raise FormatError(
            f"{path}: truncated binary data: {vertex.count} vertices x {dtype.itemsize} bytes need "
            f"{needed} bytes, found {max(0, len(raw) - start)}"
        )
    records = np.frombuffer(raw, dtype=dtype, count=vertex.count, offset=start)
    array = np.stack([records[n].astype(np.float32) for n in names], axis=1) if names else np.zeros((vertex.count, 0), np.float32)
    return array, names


def _parse_ply_header(path: Path, raw: bytes) -> tuple[list[_PlyElement], str, int]:
    if not raw.startswith(b"ply"):
        raise FormatError(f"{path}: header line 1: a PLY file starts with 'ply'")
    elements: list[_PlyElement] = []
    encoding = None
    pos, line_no = 0, 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            raise FormatError(f"{path}: the PLY header ends at line {line_no + 1} without 'end_header'")
        line_no += 1
        try:
            line = raw[pos:end].decode("ascii").strip()
        except UnicodeDecodeError as err:
            raise FormatError(f"{path}: header line {line_no} is not ASCII text") from err
        pos = end + 1
        words = line.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise FormatError(f"{path}: header line {line_no}: unknown PLY format {line!r}")
            encoding = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise FormatError(f"{path}: header line {line_no}: expected 'element <name> <count>', got {line!r}")
            elements.append(_PlyElement(words[1], int(words[2]), line_no, []))
        elif words[0] == "property":
            if not elements:
                raise FormatError(f"{path}: header line {line_no}: property before any element")
            if len(words) == 5 and words[1] == "list":
                elements[-1].has_list = True
                continue
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                raise FormatError(f"{path}: header line {line_no}: bad property {line!r}")
            elements[-1].properties.append((words[2], _PLY_TYPES[words[1]]))
        else:
            raise FormatError(f"{path}: header line {line_no}: unknown PLY header keyword {words[0]!r}")
    if encoding is None:
        raise FormatError(f"{path}: the PLY header has no 'format' line")
    return elements, encoding, pos


# ----------------------------------------------------------------------------------------------
# writing


def write_point_file(
    path: str | os.PathLike[str],
    data: PointCloudData | np.ndarray,
    fields: Sequence[str] | None = None,
    encoding: PointEncoding = "binary",
) -> Path:
    """Write points to a `.bin`, `.npy`, `.pcd` or `.ply` file (atomically: a temporary file is
    renamed over `path`, so a crash leaves any previous file intact).

    Args:
        path: the output; its extension chooses the format. Parent folders are created.
        data: `PointCloudData`, or an `ndarray[N, C>=3]` whose columns `fields` names.
        fields: column names for an array (default `x y z intensity feature_4 ...`).
        encoding: `"binary"` or `"ascii"` for `.pcd`/`.ply`; `.bin`/`.npy` are always binary.
            `.bin` and `.npy` store no field names; `red green blue` of integer values in 0-255 are
            written as colours (packed `rgb` in PCD, `uchar` properties in PLY).

    Returns:
        The path written.
    """
    path = Path(path)
    if isinstance(data, PointCloudData):
        array, names = data.array, data.fields
    else:
        array = np.asarray(data, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] < 3:
            raise FormatError(f"{path}: points to write must be an array [N, C>=3], got shape {array.shape}")
        names = tuple(fields) if fields is not None else default_fields(array.shape[1])
    if len(names) != array.shape[1] or tuple(names[:3]) != ("x", "y", "z"):
        raise FormatError(
            f"{path}: {array.shape[1]} point columns need as many field names starting with x, y, z; "
            f"got {list(names)}"
        )
    if encoding not in ("binary", "ascii"):
        raise ValueError(f"encoding must be 'binary' or 'ascii', got {encoding!r}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        payload = array.astype("<f4").tobytes()
    elif suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, array.astype("<f4"))
        payload = buffer.getvalue()
    elif suffix == ".pcd":
        payload = _pcd_bytes(array, names, encoding)
    elif suffix == ".ply":
        payload = _ply_bytes(array, names, encoding)
    else:
        raise FormatError(
            f"{path}: unknown point-cloud extension {path.suffix!r}; supported: {', '.join(POINT_EXTENSIONS)}"
        )
    atomic_write_bytes(path, payload)
    return path


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to a temporary file next to `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _colour_columns(array: np.ndarray, names: Sequence[str]) -> list[int] | None:
    """Indices of red, green, blue when all three exist and hold integers in 0-255."""
    if not all(c in names for c in _COLOUR_FIELDS):
        return None
    idx = [list(names).index(c) for c in _COLOUR_FIELDS]
    values = array[:, idx]
    if values.size and not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255):
        return None
    return idx


def _check_names(names: Sequence[str]) -> None:
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
    if bad:
        raise FormatError(f"field names {bad} cannot be written to a PCD/PLY header")


def _savetxt(columns: list[tuple[np.ndarray, str]], num_rows: int) -> bytes:
    if num_rows == 0:
        return b""
    buffer = io.BytesIO()
    matrix = np.stack([c.astype(np.float64) for c, _ in columns], axis=1)
    # %.9g keeps every float32 value exactly; integer columns are printed as integers.
    np.savetxt(buffer, matrix, fmt=[fmt for _, fmt in columns], delimiter=" ")
    return buffer.getvalue()


def _pcd_bytes(array: np.ndarray, names: Sequence[str], encoding: PointEncoding) -> bytes:
    _check_names(names)
    colour = _colour_columns(array, names)
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
        return header + _savetxt([(c[3], "%d" if c[2] == "U" else "%.9g") for c in columns], n)
    records = np.empty(n, dtype=[(f"c{i}", c[1]) for i, c in enumerate(columns)])
    for i, c in enumerate(columns):
        records[f"c{i}"] = c[3]
    return header + records.tobytes()


def _ply_bytes(array: np.ndarray, names: Sequence[str], encoding: PointEncoding) -> bytes:
    _check_names(names)
    colour = set(_colour_columns(array, names) or [])
    if colour and "alpha" in names:
        alpha = array[:, list(names).index("alpha")]
        if not alpha.size or (np.all(alpha == np.round(alpha)) and alpha.min() >= 0 and alpha.max() <= 255):
            colour.add(list(names).index("alpha"))
    types = ["uchar" if i in colour else "float" for i in range(len(names))]
    fmt = "ascii 1.0" if encoding == "ascii" else "binary_little_endian 1.0"
    header = (
        f"ply\nformat {fmt}\ncomment written by pc3d\nelement vertex {array.shape[0]}\n"
        + "".join(f"property {t} {n}\n" for t, n in zip(types, names, strict=True))
        + "end_header\n"
    ).encode("ascii")
    if encoding == "ascii":
        cols = [(array[:, i], "%d" if t == "uchar" else "%.9g") for i, t in enumerate(types)]
        return header + _savetxt(cols, array.shape[0])
    dtype = np.dtype([(f"c{i}", "<u1" if t == "uchar" else "<f4") for i, t in enumerate(types)])
    records = np.empty(array.shape[0], dtype=dtype)
    for i in range(len(names)):
        records[f"c{i}"] = array[:, i]
    return header + records.tobytes()


# ----------------------------------------------------------------------------------------------
# points structures


def load_points(
    path: str | os.PathLike[str],
    num_features: int | None = None,
    mode: str = "lidar",
    nan_policy: NanPolicy = "drop",
) -> BasePoints:
    """Read a point-cloud file into a points structure (`LiDARPoints` for `mode="lidar"`).

    Columns after `x, y, z` become named attributes (`red, green, blue` become one `color`
    attribute, as in MMDetection3D). See `read_point_file` for the arguments.
    """
    return points_from_data(read_point_file(path, num_features, nan_policy), mode)


def points_from_data(data: PointCloudData, mode: str = "lidar") -> BasePoints:
    """Wrap `PointCloudData` into the points structure of `mode` ("lidar", "camera", "depth")."""
    import torch

    from pc3d.structures import CameraPoints, DepthPoints, LiDARPoints

    classes = {"lidar": LiDARPoints, "camera": CameraPoints, "depth": DepthPoints}
    key = str(getattr(mode, "value", mode)).lower()
    if key not in classes:
        raise FormatError(f"unknown point mode {mode!r}; expected one of {sorted(classes)}")
    tensor = torch.from_numpy(np.ascontiguousarray(data.array, dtype=np.float32))
    try:
        return classes[key](tensor, points_dim=tensor.shape[1], attribute_dims=_attribute_dims(data.fields))
    except FormatError as err:
        if data.path is None:
            raise
        # Points structures hold finite values only; NaN outside x/y/z is kept by nan_policy.
        raise FormatError(f"{data.path}: {err} (counting the points kept after nan_policy)") from err


def _attribute_dims(fields: Sequence[str]) -> dict[str, int | list[int]] | None:
    dims: dict[str, int | list[int]] = {}
    for i, name in enumerate(fields[3:], start=3):
        if name not in _COLOUR_FIELDS:
            dims[name] = i
    if all(c in fields for c in _COLOUR_FIELDS):
        dims["color"] = [list(fields).index(c) for c in _COLOUR_FIELDS]
    else:
        dims.update({c: list(fields).index(c) for c in _COLOUR_FIELDS if c in fields})
    return dims or None


def fields_of_points(points: BasePoints) -> tuple[str, ...]:
    """Column names of a points structure, from its `attribute_dims` (unnamed columns get
    `feature_<index>`)."""
    num = int(points.tensor.shape[1])
    names = list(default_fields(num)[:3]) + [f"feature_{i}" for i in range(3, num)]
    for name, dims in (getattr(points, "attribute_dims", None) or {}).items():
        if isinstance(dims, int):
            names[dims] = name
        elif name == "color" and len(dims) == 3:
            for column, colour in zip(dims, _COLOUR_FIELDS, strict=True):
                names[column] = colour
        else:
            for k, column in enumerate(dims):
                names[column] = f"{name}_{k}"
    return tuple(names)


def save_points(
    path: str | os.PathLike[str],
    points: BasePoints | PointCloudData | np.ndarray | torch.Tensor,
    fields: Sequence[str] | None = None,
    encoding: PointEncoding = "binary",
) -> Path:
    """Write a points structure, `PointCloudData`, array or tensor `[N, C>=3]` to a point file.

    Field names come from `fields`, else from the structure's attributes, else the KITTI default
    `x y z intensity ...`. See `write_point_file`.
    """
    if isinstance(points, PointCloudData):
        return write_point_file(path, points, encoding=encoding)
    if hasattr(points, "tensor") and hasattr(points, "attribute_dims"):
        array = points.tensor.detach().cpu().numpy()
        names = tuple(fields) if fields is not None else fields_of_points(points)
        return write_point_file(path, array, names, encoding)
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    return write_point_file(path, np.asarray(points), fields, encoding)
