"""JSON output with one rule for non-finite numbers: NaN and ±inf are written as ``null``.

Python's ``json`` writes a bare ``NaN``/``Infinity`` by default, which is not JSON; every JSON or
JSON-lines file pc3d writes goes through :func:`dumps` so that any parser reads it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pc3d.io.atomic import atomic_write_text

__all__ = ["dumps", "to_jsonable", "write_json"]


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats become ``None``, tuples become lists,
    numpy/torch scalars and arrays become Python numbers and lists, paths become strings."""
    if isinstance(value, float):  # also numpy's float64, a float subclass: made a plain float
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy and torch scalars and arrays
    if callable(tolist):
        return to_jsonable(tolist())
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: {value!r}")


def dumps(value: Any, indent: int | None = None) -> str:
    """``value`` as valid JSON text (non-finite numbers as ``null``).

    Args:
        value: JSON-like data (see `to_jsonable`).
        indent: as `json.dumps`'s; None writes one line.

    Returns:
        The JSON text.

    Raises:
        TypeError: a value JSON cannot hold, naming it.
    """
    return json.dumps(to_jsonable(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike[str], value: Any, indent: int | None = 2) -> Path:
    """Write ``value`` as JSON to ``path`` atomically (with a trailing newline).

    Args:
        path: the file to create or replace.
        value: JSON-like data (see `to_jsonable`).
        indent: as `json.dumps`'s.

    Returns:
        The target path.
    """
    return atomic_write_text(path, dumps(value, indent=indent) + "\n")
