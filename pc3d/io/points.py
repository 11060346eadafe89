"""Point-cloud files: KITTI `.bin`, `.npy`, `.pcd` and `.ply`, read and written by field name.

A point cloud is read into a `PointCloudData`: one `float32` array `[N, C]` whose first three
columns are always `x, y, z`, plus the name of every column. `load_points` wraps that into a
pc3d points structure (`LiDARPoints` by default). The formats themselves live in
`pc3d.io.point_formats` (one module each); this module chooses one by extension, puts x, y, z
first, applies the NaN policy and writes atomically.

| extension | read | write | field names |
|---|---|---|---|
| `.bin` | raw little-endian float32 records, `num_features` per point (default 4) | same | `x y z intensity` then `feature_4`, `feature_5`, ... (not stored) |
| `.npy` | `[N, C>=3]` numeric array, or a 1-D structured array with named fields | `[N, C]` float32 | as `.bin` for plain arrays (not stored) |
| `.pcd` | `DATA ascii`, `binary` and `binary_compressed` (LZF) | `ascii` and `binary` | from `FIELDS`; packed `rgb`/`rgba` become `red green blue (alpha)` |
| `.ply` | `ascii`, `binary_little_endian`, `binary_big_endian`; the `vertex` element | `ascii` and `binary_little_endian` | vertex property names |

Non-finite coordinates: every reader applies `nan_policy` to the `x, y, z` columns
(other columns are never inspected, and points structures carry their NaN along): `"drop"` (default) removes those points and emits a
`NonFinitePointsWarning` with the count and the file, `"raise"` raises a `FormatError` naming the
file and the first bad point, `"keep"` returns them untouched. An empty cloud is valid everywhere.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write_bytes
from pc3d.io.point_formats.bin import encode_bin, read_bin
from pc3d.io.point_formats.fields import COLOUR_FIELDS, default_fields
from pc3d.io.point_formats.lzf import lzf_decompress
from pc3d.io.point_formats.npy import encode_npy, read_npy
from pc3d.io.point_formats.pcd import encode_pcd, read_pcd
from pc3d.io.point_formats.ply import encode_ply, read_ply

if TYPE_CHECKING:
    import torch

    from pc3d.structures import BasePoints

__all__ = [
    "NAN_POLICIES",
    "POINT_EXTENSIONS",
    "NanPolicy",
    "NonFinitePointsWarning",
    "PointCloudData",
    "PointEncoding",
    "apply_nan_policy",
    "default_fields",
    "fields_of_points",
    "load_points",
    "lzf_decompress",
    "nan_policy_mask",
    "points_from_data",
    "read_point_file",
    "save_points",
    "select_columns",
    "write_point_file",
]

NanPolicy = Literal["drop", "raise", "keep"]
#: The values `nan_policy` accepts.
NAN_POLICIES: tuple[str, ...] = ("drop", "raise", "keep")
PointEncoding = Literal["binary", "ascii"]
#: Which columns a model reads: ``N`` keeps the first N (MMDetection3D's ``use_dim=N``), a list
#: names them by field name or index, in order (``["x", "y", "z", "intensity"]``, ``[0, 1, 2, 4]``).
UseDims = int | Sequence[int | str]
POINT_EXTENSIONS: tuple[str, ...] = (".bin", ".npy", ".pcd", ".ply")


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
        _check_unique(self.path, self.fields)

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""

    @property
    def num_points(self) -> int:
        """The number of points `N`."""
        return int(self.array.shape[0])

    def column(self, name: str) -> np.ndarray:
        """`float32 ndarray[N]`: the column called `name`.

        Raises:
            KeyError: no such field (the message lists the fields).
        """
        if name not in self.fields:
            raise KeyError(f"no field {name!r}; fields are {list(self.fields)}")
        return self.array[:, self.fields.index(name)]

    def select(self, use_dims: UseDims) -> PointCloudData:
        """The columns ``use_dims`` names, in its order (see :func:`select_columns`).

        Raises:
            FormatError: as :func:`select_columns`, naming the file.
        """
        where = str(self.path) if self.path is not None else "points"
        indices = select_columns(self.fields, use_dims, where)
        return PointCloudData(
            np.ascontiguousarray(self.array[:, indices]), tuple(self.fields[i] for i in indices), self.path
        )


def select_columns(fields: Sequence[str], use_dims: UseDims, what: str = "points") -> list[int]:
    """The column indices ``use_dims`` picks from a cloud with columns ``fields``.

    Args:
        fields: the cloud's column names (x, y, z first).
        use_dims: ``N`` for the first N columns, or a list of field names and indices, x, y, z
            first (the models read them first).
        what: the cloud's name, for messages.

    Raises:
        FormatError: an unknown name (with "did you mean" and the cloud's columns), an index out
            of range, a column picked twice, fewer than three, or not x, y, z first.
    """
    from pc3d.errors import did_you_mean

    columns = f"its columns: {', '.join(fields)}"
    if isinstance(use_dims, bool) or not isinstance(use_dims, (int, Sequence)) or isinstance(use_dims, str):
        raise FormatError(f"{what}: use_dims must be a number of columns or a list of them, got {use_dims!r}")
    if isinstance(use_dims, int):
        if not 3 <= use_dims <= len(fields):
            raise FormatError(f"{what}: cannot keep the first {use_dims} columns: {columns} ({len(fields)})")
        return list(range(use_dims))
    indices: list[int] = []
    for item in use_dims:
        if isinstance(item, str):
            if item not in fields:
                raise FormatError(f"{what}: no column '{item}'{did_you_mean(item, fields)}; {columns}")
            indices.append(list(fields).index(item))
        elif isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(fields):
            indices.append(item)
        else:
            raise FormatError(
                f"{what}: column {item!r} is not an index from 0 to {len(fields) - 1}; {columns}"
            )
    named = [fields[i] for i in indices]
    if len(set(indices)) != len(indices):
        raise FormatError(f"{what}: use_dims picks a column twice: {named}")
    if indices[:3] != [0, 1, 2]:
        raise FormatError(f"{what}: use_dims must start with x, y, z (models read them first), got {named}")
    return indices


def _unknown_extension(path: Path) -> FormatError:
    return FormatError(
        f"{path}: unknown point-cloud extension {path.suffix!r}; supported: {', '.join(POINT_EXTENSIONS)}"
    )


# ----------------------------------------------------------------------------------- read


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
            is wrong).
        FileNotFoundError: the file does not exist.
        ValueError: `nan_policy` is not one of `NAN_POLICIES`.
    """
    path = Path(path)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be 'drop', 'raise' or 'keep', got {nan_policy!r}")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        array, fields = read_bin(path, 4 if num_features is None else num_features)
    elif suffix == ".npy":
        array, fields = read_npy(path)
    elif suffix == ".pcd":
        array, fields = read_pcd(path)
    elif suffix == ".ply":
        array, fields = read_ply(path)
    else:
        raise _unknown_extension(path)
    array, fields = _xyz_first(path, array, fields)
    if num_features is not None and suffix != ".bin" and array.shape[1] != num_features:
        raise FormatError(
            f"{path}: has {array.shape[1]} values per point ({', '.join(fields)}), "
            f"num_features={num_features} was asked for"
        )
    array = apply_nan_policy(path, array, nan_policy)
    return PointCloudData(np.ascontiguousarray(array, dtype=np.float32), fields, path)


def _xyz_first(path: Path, array: np.ndarray, fields: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    missing = [name for name in ("x", "y", "z") if name not in fields]
    if missing:
        raise FormatError(f"{path}: no field {', '.join(missing)} among the fields {list(fields)}")
    _check_unique(path, fields)
    order = [fields.index(n) for n in ("x", "y", "z")]
    order += [i for i, name in enumerate(fields) if name not in ("x", "y", "z")]
    if order == list(range(len(fields))):
        return array, fields
    return array[:, order], tuple(fields[i] for i in order)


def _check_unique(path: Path | None, fields: Sequence[str]) -> None:
    """A file cannot name two columns alike (which one would ``intensity`` be?)."""
    if len(set(fields)) != len(fields):
        repeated = sorted({name for name in fields if list(fields).count(name) > 1})
        where = f"{path}: " if path is not None else ""
        raise FormatError(f"{where}field name(s) {repeated} appear more than once")


def apply_nan_policy(path: Path | None, array: np.ndarray, nan_policy: NanPolicy) -> np.ndarray:
    """Apply `nan_policy` to the points of `array` whose x, y or z is NaN or infinite.

    Args:
        path: the file the points come from, named in the warning or error.
        array: `[N, C]`, x, y, z first.
        nan_policy: `"drop"` (warn with `NonFinitePointsWarning`), `"raise"` or `"keep"`.

    Returns:
        `array`, without the bad points for `"drop"`.

    Raises:
        FormatError: `"raise"` and some point is bad, naming the first one.
    """
    kept = nan_policy_mask(path, array, nan_policy, stacklevel=4)
    return array if kept is None else array[kept]


def nan_policy_mask(
    path: Path | None, array: np.ndarray, nan_policy: NanPolicy, stacklevel: int = 2
) -> np.ndarray | None:
    """The points of `array` that `nan_policy` keeps, warning or raising as `apply_nan_policy`.

    For callers that must drop the same rows of data that goes with the points (per-point labels).

    Args:
        path: the file the points come from, named in the warning or error.
        array: `[N, C]`, x, y, z first.
        nan_policy: `"drop"`, `"raise"` or `"keep"`.
        stacklevel: of the `NonFinitePointsWarning` (2: the caller of this function).

    Returns:
        `bool ndarray[N]` of the points kept, or None when every point is kept.

    Raises:
        FormatError: `"raise"` and some point is bad, naming the first one.
    """
    # Whole-array check first: a contiguous reduction is ~40x cheaper than the per-row one.
    if nan_policy == "keep" or array.shape[0] == 0 or np.isfinite(array).all():
        return None
    finite = np.isfinite(array[:, :3]).all(axis=1)
    num_bad = int(array.shape[0] - np.count_nonzero(finite))
    if num_bad == 0:
        return None
    where = f"{path}: " if path is not None else ""
    if nan_policy == "raise":
        first = int(np.argmin(finite))
        raise FormatError(
            f"{where}{num_bad} of {array.shape[0]} points have NaN or infinite x/y/z; the first "
            f"is point {first} (0-based): {array[first, :3].tolist()}"
        )
    # Read as "pc3d <command>: warning: <message>" by the CLI, so the hint names every place the
    # policy is set: the option of the commands that read clouds, the key of a data set in a
    # config (`pc3d train` / `pc3d test` read clouds through their data sets) and the argument.
    warnings.warn(
        f"{where}dropped {num_bad} of {array.shape[0]} points with NaN or infinite x/y/z; "
        "to stop with an error instead, use --nan-policy raise (command line), "
        "nan_policy: raise (a data set in a config) or nan_policy='raise' (Python)",
        NonFinitePointsWarning,
        stacklevel=stacklevel,
    )
    return finite


# ---------------------------------------------------------------------------------- write


def write_point_file(
    path: str | os.PathLike[str],
    data: PointCloudData | np.ndarray,
    fields: Sequence[str] | None = None,
    encoding: PointEncoding = "binary",
) -> Path:
    """Write points to a `.bin`, `.npy`, `.pcd` or `.ply` file, atomically (`pc3d.io.atomic`:
    a crash leaves any previous file intact).

    Args:
        path: the output; its extension chooses the format. Parent folders are created.
        data: `PointCloudData`, or an `ndarray[N, C>=3]` whose columns `fields` names.
        fields: column names for an array (default `x y z intensity feature_4 ...`).
        encoding: `"binary"` or `"ascii"` for `.pcd`/`.ply`; `.bin`/`.npy` are always binary.
            `.bin` and `.npy` store no field names; `red green blue` of integer values in 0-255 are
            written as colours (packed `rgb` in PCD, `uchar` properties in PLY).

    Returns:
        The path written.

    Raises:
        FormatError: unknown extension, an array that is not `[N, C>=3]`, or field names that do
            not fit the columns, do not start with x, y, z, or name a column twice.
        ValueError: an unknown `encoding`.
    """
    path = Path(path)
    if isinstance(data, PointCloudData):
        array, names = data.array, data.fields
    else:
        if np.iscomplexobj(data):
            raise FormatError(f"{path}: points to write must be real numbers, got complex values")
        array = np.asarray(data, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] < 3:
            raise FormatError(f"{path}: points to write must be an array [N, C>=3], got shape {array.shape}")
        names = tuple(fields) if fields is not None else default_fields(array.shape[1])
    if len(names) != array.shape[1] or tuple(names[:3]) != ("x", "y", "z"):
        raise FormatError(
            f"{path}: {array.shape[1]} point columns need as many field names starting with x, y, z; "
            f"got {list(names)}"
        )
    _check_unique(path, names)  # PCD and PLY would store both; no reader could tell them apart
    if encoding not in ("binary", "ascii"):
        raise ValueError(f"encoding must be 'binary' or 'ascii', got {encoding!r}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        payload = encode_bin(array)
    elif suffix == ".npy":
        payload = encode_npy(array)
    elif suffix == ".pcd":
        payload = encode_pcd(array, names, encoding)
    elif suffix == ".ply":
        payload = encode_ply(array, names, encoding)
    else:
        raise _unknown_extension(path)
    return atomic_write_bytes(path, payload)


# ---------------------------------------------------------------------- points structures


def load_points(
    path: str | os.PathLike[str],
    num_features: int | None = None,
    mode: str = "lidar",
    nan_policy: NanPolicy = "drop",
) -> BasePoints:
    """Read a point-cloud file into a points structure (`LiDARPoints` for `mode="lidar"`).

    Columns after `x, y, z` become named attributes (`red, green, blue` become one `color`
    attribute, as in MMDetection3D); they may hold NaN (an unknown intensity), x, y, z may not.

    Args:
        path: the file (see `read_point_file`).
        num_features: float32 values per point of a `.bin` file (default 4).
        mode: `"lidar"`, `"camera"` or `"depth"`.
        nan_policy: see `read_point_file`.

    Returns:
        `LiDARPoints`, `CameraPoints` or `DepthPoints`.
    """
    return points_from_data(read_point_file(path, num_features, nan_policy), mode)


def points_from_data(data: PointCloudData, mode: str = "lidar") -> BasePoints:
    """Wrap `PointCloudData` into the points structure of `mode`.

    Args:
        data: the columns read from a file.
        mode: `"lidar"`, `"camera"` or `"depth"` (or a `Coord3DMode`-like enum).

    Returns:
        The points structure, with the named columns as attributes.

    Raises:
        FormatError: an unknown mode, or values the structure refuses (naming the file).
    """
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
        # Points structures need finite x, y, z (other columns may hold NaN). Only nan_policy
        # "keep" lets a bad coordinate through, and it keeps every point: the row is the file's.
        raise FormatError(f"{data.path}: {err}") from err


def _attribute_dims(fields: Sequence[str]) -> dict[str, int | list[int]] | None:
    dims: dict[str, int | list[int]] = {}
    for i, name in enumerate(fields[3:], start=3):
        if name not in COLOUR_FIELDS:
            dims[name] = i
    if all(c in fields for c in COLOUR_FIELDS):
        dims["color"] = [list(fields).index(c) for c in COLOUR_FIELDS]
    else:
        dims.update({c: list(fields).index(c) for c in COLOUR_FIELDS if c in fields})
    return dims or None


def fields_of_points(points: BasePoints) -> tuple[str, ...]:
    """Column names of a points structure, from its `attribute_dims` (unnamed columns get
    `feature_<index>`)."""
    num = int(points.tensor.shape[1])
    names = ["x", "y", "z"] + [f"feature_{i}" for i in range(3, num)]
    for name, dims in (getattr(points, "attribute_dims", None) or {}).items():
        if isinstance(dims, int):
            names[dims] = name
        elif name == "color" and len(dims) == 3:
            for column, colour in zip(dims, COLOUR_FIELDS, strict=True):
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

    Args:
        path: the output (see `write_point_file`).
        points: what to write.
        fields: column names; default: the structure's attributes, else the KITTI default
            `x y z intensity ...`.
        encoding: `"binary"` or `"ascii"` for `.pcd`/`.ply`.

    Returns:
        The path written.
    """
    if isinstance(points, PointCloudData):
        return write_point_file(path, points, encoding=encoding)
    if hasattr(points, "tensor") and hasattr(points, "attribute_dims"):  # a points structure
        structure = cast("BasePoints", points)
        names = tuple(fields) if fields is not None else fields_of_points(structure)
        return write_point_file(path, structure.tensor.detach().cpu().numpy(), names, encoding)
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    return write_point_file(path, np.asarray(points), fields, encoding)
