"""Column names shared by the point-cloud formats."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from pc3d.errors import FormatError

__all__ = [
    "COLOUR_FIELDS",
    "DEFAULT_FIELDS",
    "byte_valued",
    "check_header_names",
    "colour_columns",
    "default_fields",
]

#: Columns of a KITTI-style record, in order; more columns are named `feature_<index>`.
DEFAULT_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity")
#: Colour channels; a cloud holding all three has colour (`BasePoints.color`).
COLOUR_FIELDS: tuple[str, ...] = ("red", "green", "blue")


def default_fields(num_columns: int) -> tuple[str, ...]:
    """Names of the columns of a `.bin` or plain `.npy` cloud: `x y z intensity feature_4 ...`.

    Args:
        num_columns: values per point.

    Returns:
        `num_columns` names.

    Raises:
        FormatError: fewer than 3 columns.
    """
    if num_columns < 3:
        raise FormatError(f"a point needs at least 3 columns (x, y, z), got {num_columns}")
    return DEFAULT_FIELDS[:num_columns] + tuple(f"feature_{i}" for i in range(4, num_columns))


def byte_valued(values: np.ndarray) -> bool:
    """Whether every value is an integer in 0-255 (so it can be stored as one unsigned byte)."""
    return not values.size or bool(
        np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255
    )


def colour_columns(array: np.ndarray, names: Sequence[str]) -> list[int] | None:
    """Indices of `red, green, blue` when all three exist and hold integers in 0-255.

    Args:
        array: `float32 [N, C]`.
        names: the name of each column.

    Returns:
        The three column indices, or None when the cloud has no byte colour.
    """
    if not all(c in names for c in COLOUR_FIELDS):
        return None
    idx = [list(names).index(c) for c in COLOUR_FIELDS]
    return idx if byte_valued(array[:, idx]) else None


def check_header_names(names: Sequence[str]) -> None:
    """Refuse field names that a PCD or PLY header cannot hold (it separates them by spaces).

    Raises:
        FormatError: naming the field names that are not identifiers.
    """
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
    if bad:
        raise FormatError(f"field names {bad} cannot be written to a PCD/PLY header")
