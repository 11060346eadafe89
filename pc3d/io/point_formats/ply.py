"""PLY point clouds: the `vertex` element of `ascii`, `binary_little_endian` and
`binary_big_endian` files is read; `ascii` and `binary_little_endian` are written.

Field names are the vertex property names. Other elements (faces, ...) are skipped; list
properties are supported only in elements after `vertex`. On writing, integer colours (and an
`alpha` next to them) in 0-255 become `uchar` properties, as viewers expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.point_formats.fields import byte_valued, check_header_names, colour_columns
from pc3d.io.point_formats.text import format_ascii_rows, line_of, parse_ascii_rows

__all__ = ["PlyElement", "encode_ply", "parse_ply_header", "read_ply"]

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_PLY_ENCODINGS = ("ascii", "binary_little_endian", "binary_big_endian")


@dataclass
class PlyElement:
    """One `element` of a PLY header.

    Attributes:
        name: e.g. `vertex`, `face`.
        count: the number of records.
        line: the header line declaring it.
        properties: `(name, numpy type code)` of each scalar property, in order.
        has_list: some property is a list (its records have no fixed size).
    """

    name: str
    count: int
    line: int
    properties: list[tuple[str, str]]
    has_list: bool = False


# ------------------------------------------------------------------------------------ read


def read_ply(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read the vertices of a PLY file.

    Returns:
        `(float32 [N, C], vertex property names)`.

    Raises:
        FormatError: a malformed header, no `vertex` element, list properties in or before the
            vertices (binary), or truncated data, naming the file (and the line).
    """
    raw = path.read_bytes()
    elements, encoding, offset = parse_ply_header(path, raw)
    index = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
    if index is None:
        raise FormatError(f"{path}: the PLY header declares no 'vertex' element")
    vertex = elements[index]
    if vertex.has_list:
        raise FormatError(f"{path}: header line {vertex.line}: list properties in 'vertex' are not supported")
    names = tuple(name for name, _ in vertex.properties)
    if encoding == "ascii":
        return _read_ascii_vertices(path, raw, offset, elements, index), names
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
    if not names:
        return np.zeros((vertex.count, 0), np.float32), names
    return np.stack([records[n].astype(np.float32) for n in names], axis=1), names


def _read_ascii_vertices(
    path: Path, raw: bytes, offset: int, elements: list[PlyElement], index: int
) -> np.ndarray:
    vertex = elements[index]
    text = raw[offset:].decode("ascii", errors="replace")
    skip = sum(e.count for e in elements[:index])
    lines = text.splitlines()
    if len(lines) < skip + vertex.count:
        raise FormatError(
            f"{path}: truncated data: the header announces {vertex.count} vertices, "
            f"the file holds {max(0, len(lines) - skip)}"
        )
    body = "\n".join(lines[skip : skip + vertex.count]).encode()
    first_line = line_of(raw, offset) + skip
    values = parse_ascii_rows(path, body, vertex.count, len(vertex.properties), first_line)
    return values.astype(np.float32)


def parse_ply_header(path: Path, raw: bytes) -> tuple[list[PlyElement], str, int]:
    """Parse the header of a PLY file.

    Args:
        path: the file, for messages.
        raw: its bytes.

    Returns:
        The elements, the encoding (`ascii`, `binary_little_endian`, `binary_big_endian`) and
        the byte offset of the data.

    Raises:
        FormatError: a malformed or unknown header line, naming it.
    """
    if not raw.startswith(b"ply"):
        raise FormatError(f"{path}: header line 1: a PLY file starts with 'ply'")
    elements: list[PlyElement] = []
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
            if len(words) != 3 or words[1] not in _PLY_ENCODINGS:
                raise FormatError(f"{path}: header line {line_no}: unknown PLY format {line!r}")
            encoding = words[1]
        else:
            _add_declaration(path, line_no, line, elements)
    if encoding is None:
        raise FormatError(f"{path}: the PLY header has no 'format' line")
    return elements, encoding, pos


def _add_declaration(path: Path, line_no: int, line: str, elements: list[PlyElement]) -> None:
    """Add an `element` or `property` header line to `elements`."""
    words = line.split()
    if words[0] == "element":
        if len(words) != 3 or not words[2].isdigit():
            raise FormatError(
                f"{path}: header line {line_no}: expected 'element <name> <count>', got {line!r}"
            )
        elements.append(PlyElement(words[1], int(words[2]), line_no, []))
    elif words[0] == "property":
        if not elements:
            raise FormatError(f"{path}: header line {line_no}: property before any element")
        if len(words) == 5 and words[1] == "list":
            elements[-1].has_list = True
            return
        if len(words) != 3 or words[1] not in _PLY_TYPES:
            raise FormatError(f"{path}: header line {line_no}: bad property {line!r}")
        elements[-1].properties.append((words[2], _PLY_TYPES[words[1]]))
    else:
        raise FormatError(f"{path}: header line {line_no}: unknown PLY header keyword {words[0]!r}")


# ----------------------------------------------------------------------------------- write


def encode_ply(array: np.ndarray, names: Sequence[str], encoding: Literal["binary", "ascii"]) -> bytes:
    """The bytes of a PLY file whose `vertex` element holds `array` (`float32 [N, C]`).

    Properties are `float`, except integer colours (and `alpha` with them) in 0-255: `uchar`.

    Args:
        array: the points.
        names: the name of each column.
        encoding: `binary_little_endian` or `ascii`.

    Returns:
        The file's bytes.

    Raises:
        FormatError: a field name a PLY header cannot hold.
    """
    check_header_names(names)
    colour = set(colour_columns(array, names) or [])
    if colour and "alpha" in names and byte_valued(array[:, list(names).index("alpha")]):
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
        return header + format_ascii_rows(cols, array.shape[0])
    dtype = np.dtype([(f"c{i}", "<u1" if t == "uchar" else "<f4") for i, t in enumerate(types)])
    records = np.empty(array.shape[0], dtype=dtype)
    for i in range(len(names)):
        records[f"c{i}"] = array[:, i]
    return header + records.tobytes()
