"""What a file holds, points or boxes: the one rule that `pc3d info`, `pc3d convert` and any
other reader of both kinds follow.

| extension | holds |
|---|---|
| `.bin`, `.pcd`, `.ply` | points |
| `.json`, `.csv`, `.txt` | boxes |
| `.npy` | told by `what`; else by the array's header: a structured array (named fields) or a plain `[N, C]` array with 3 <= C < 7 holds points (a box row has at least 7 values); a plain `[N, C>=7]` array can be either, and `what` must say which |

Only the `.npy` header is read, never the data; numpy is imported only then, so that light
commands can call `file_kind` without loading it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pc3d.errors import FormatError

__all__ = ["FILE_KINDS", "FileKind", "file_kind"]

FileKind = Literal["points", "boxes"]
#: The values of `file_kind`'s `what` argument ("auto" decides by the rule above).
FILE_KINDS: tuple[str, ...] = ("auto", "points", "boxes")

_POINT_ONLY = (".bin", ".pcd", ".ply")
_BOX_ONLY = (".json", ".csv", ".txt")
_EXTENSIONS: dict[str, tuple[str, ...]] = {"points": (*_POINT_ONLY, ".npy"), "boxes": (*_BOX_ONLY, ".npy")}
# A box row holds x, y, z, three sizes and yaw at least.
_MIN_BOX_COLUMNS = 7


def file_kind(path: str | os.PathLike[str], what: str = "auto") -> FileKind:
    """Whether `path` holds points or boxes.

    Args:
        path: a point-cloud or box file.
        what: `"points"` or `"boxes"` to say it (checked against the extension), or `"auto"`
            to decide by the extension and, for `.npy`, the array's shape (module doc).

    Returns:
        `"points"` or `"boxes"`.

    Raises:
        ValueError: `what` is not one of `FILE_KINDS`.
        FormatError: an extension that holds neither, or cannot hold `what`; a `.npy` that is
            not a readable array, holds neither, or could be either while `what` is `"auto"`.
        FileNotFoundError: a `.npy` that does not exist (when its header must be read).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if what not in FILE_KINDS:
        raise ValueError(f"what must be one of {', '.join(FILE_KINDS)}, got {what!r}")
    if what != "auto":
        if suffix not in _EXTENSIONS[what]:
            raise FormatError(
                f"{path}: a {path.suffix or 'file without extension'} file does not hold {what}; "
                f"{what} files are {' '.join(_EXTENSIONS[what])}"
            )
        return "points" if what == "points" else "boxes"
    if suffix in _POINT_ONLY:
        return "points"
    if suffix in _BOX_ONLY:
        return "boxes"
    if suffix == ".npy":
        return _npy_kind(path)
    raise FormatError(
        f"{path}: unknown extension {path.suffix!r}; points: {' '.join(_EXTENSIONS['points'])}, "
        f"boxes: {' '.join(_EXTENSIONS['boxes'])}"
    )


def _npy_kind(path: Path) -> FileKind:
    import numpy as np

    from pc3d.io.point_formats.npy import npy_header

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    shape, dtype = npy_header(path)
    if dtype.names:
        return "points"  # named fields: x, y, z, intensity, ...
    if len(shape) == 2 and np.issubdtype(dtype, np.number):
        if 3 <= shape[1] < _MIN_BOX_COLUMNS:
            return "points"
        if shape[1] >= _MIN_BOX_COLUMNS:
            raise FormatError(
                f"{path}: a .npy array of shape {shape} may hold points or boxes; say which "
                "(--what points or --what boxes; what='points' or what='boxes' in Python)"
            )
    raise FormatError(
        f"{path}: a .npy array of {dtype} {shape} holds neither points ([N, C>=3] or a structured "
        "array with named fields) nor boxes ([N, 7+C])"
    )
