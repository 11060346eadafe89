"""Periodic angles, for tensors and numpy arrays alike (no torch import: the command line's
conversions run on numpy)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["limit_period"]

ArrayT = TypeVar("ArrayT", "Tensor", np.ndarray)


def limit_period(val: ArrayT, offset: float = 0.5, period: float = math.pi) -> ArrayT:
    """Wrap `val` into `[-offset * period, (1 - offset) * period)`.

    Works on tensors and numpy arrays alike (the result has the input's kind and dtype), as
    MMDetection3D's `limit_period` does: `val - floor(val / period + offset) * period`.

    Args:
        val: angles (any shape).
        offset: where the range starts, as a fraction of the period below 0.
        period: the period; the default pi wraps headings that are the same up to a half turn.

    Returns:
        The wrapped values, of `val`'s kind and dtype.
    """
    scaled = val / period + offset
    floor = np.floor(scaled) if isinstance(scaled, np.ndarray | np.generic | float) else scaled.floor()
    return val - floor * period
