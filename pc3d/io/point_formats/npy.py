"""NumPy `.npy` files: point clouds (`[N, C>=3]` or a 1-D structured array with named fields),
and the loading and saving that box files share.

A plain array stores no field names: columns are `x y z intensity feature_4 ...`. Pickled
(object) arrays are refused: loading one could run code.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.point_formats.fields import default_fields

__all__ = ["encode_npy", "load_npy", "npy_header", "read_npy"]


def load_npy(path: Path) -> np.ndarray:
    """The array of a `.npy` file (no pickles).

    Raises:
        FormatError: the file is not a readable `.npy` array, naming the file and numpy's reason.
    """
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"{path}: not a readable .npy array ({err})") from err


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a `.npy` file, from its header only (the data is not read).

    Raises:
        FormatError: the file does not start with a `.npy` header.
    """
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"{path}: not a readable .npy array ({err})") from err
    return tuple(int(n) for n in shape), np.dtype(dtype)


def read_npy(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a `.npy` point cloud.

    Returns:
        `(array [N, C], field names)`: a plain array as it is, a structured one with one column
        per scalar field (a field of shape `(k,)` becomes `name_0 .. name_{k-1}`).

    Raises:
        FormatError: not a `.npy` array, not numeric, or not `[N, C>=3]` / 1-D structured.
    """
    raw = load_npy(path)
    if raw.dtype.names:
        if raw.ndim != 1:
            raise FormatError(f"{path}: a structured point array must be 1-D, got shape {raw.shape}")
        fields = _expand_structured_names(raw.dtype)
        for name in raw.dtype.names:
            if np.issubdtype(raw.dtype[name].base, np.complexfloating):
                raise FormatError(f"{path}: field '{name}' holds complex values ({raw.dtype[name].base})")
        columns = [
            np.asarray(raw[name], dtype=np.float32).reshape(raw.shape[0], -1) for name in raw.dtype.names
        ]
        array = np.concatenate(columns, axis=1) if columns else np.zeros((raw.shape[0], 0), np.float32)
        return array, fields
    if np.issubdtype(raw.dtype, np.complexfloating):
        raise FormatError(f"{path}: complex values ({raw.dtype}) are not point coordinates")
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
        shape = dtype.fields[name][0].shape if dtype.fields else ()
        count = int(np.prod(shape)) if shape else 1
        names += [name] if count == 1 else [f"{name}_{i}" for i in range(count)]
    return tuple(names)


def encode_npy(array: np.ndarray) -> bytes:
    """The bytes of a `.npy` file holding `array` as little-endian float32."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype="<f4"))
    return buffer.getvalue()
