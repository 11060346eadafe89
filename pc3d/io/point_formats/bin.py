"""KITTI-style `.bin` point clouds: raw little-endian float32 records, `num_features` per point.

The file stores no field names: columns are `x y z intensity feature_4 ...`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.point_formats.fields import default_fields

__all__ = ["encode_bin", "read_bin"]


def read_bin(path: Path, num_features: int = 4) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a `.bin` cloud.

    Args:
        path: the file.
        num_features: float32 values per point (KITTI: 4).

    Returns:
        `(float32 [N, num_features], field names)`.

    Raises:
        FormatError: `num_features` below 3, or a file size that is not a whole number of
            records (naming the record counts it would fit).
    """
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 3:
        raise FormatError(
            f"{path}: num_features must be an integer >= 3 (x, y, z, ...), got {num_features!r}"
        )
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


def encode_bin(array: np.ndarray) -> bytes:
    """The bytes of a `.bin` file holding `array` (`[N, C]`, written as little-endian float32)."""
    return np.ascontiguousarray(array, dtype="<f4").tobytes()
