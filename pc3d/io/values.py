"""Checks on values read from files, shared by every reader in `pc3d.io` (and the evaluation).

One place decides what counts as a number in a text file and finds the first non-finite value of
an array, so that every reader reports bad values the same way (file, line or row, field).
"""

from __future__ import annotations

import numpy as np

__all__ = ["first_non_finite", "is_number"]


def is_number(text: str) -> bool:
    """Whether `text` parses as a Python float (`"1e-3"`, `"nan"` and `"inf"` do).

    Args:
        text: one token of a text file.

    Returns:
        True when `float(text)` succeeds.
    """
    try:
        float(text)
    except ValueError:
        return False
    return True


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """The index of the first NaN or infinite value of `array` in row-major order.

    The whole-array test comes first: a contiguous reduction is much cheaper than locating the
    value, which only broken input needs.

    Args:
        array: a numeric array of any shape.

    Returns:
        The index as a tuple (one entry per dimension), or None when every value is finite.
    """
    values = np.asarray(array)
    if values.size == 0 or np.isfinite(values).all():
        return None
    flat = int(np.argmin(np.isfinite(values).reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, values.shape))
