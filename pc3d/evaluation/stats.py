"""Small statistics shared by the evaluation metrics."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["nanmean"]


def nanmean(values: np.ndarray) -> float:
    """The mean of the values that are not NaN, or NaN when there are none (without numpy's
    "mean of empty slice" warning).

    Args:
        values: ``float[K]``, e.g. per-class AP with NaN for classes without ground truth.

    Returns:
        The mean as a Python float.
    """
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan
