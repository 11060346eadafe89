"""Point clouds in the LiDAR, Camera and Depth systems.

A point cloud wraps one float32 `Tensor[N, 3+C]`: `x, y, z` in its system, then extra columns
whose meaning `attribute_dims` names, e.g. `{"intensity": 3}` or `{"color": [3, 4, 5]}`. A named
attribute reads as `points.attr("intensity")` or simply `points.intensity`.

Geometric operations act in place on the coordinates only (as MMDetection3D's do) and follow
the same rules as the box operations, so rotating a scene with `boxes.rotate(angle, points)`
moves boxes and points together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.coord_transform import convert_point_tensor
from pc3d.structures.utils import (
    as_angle_or_rotation,
    as_float_tensor,
    check_finite,
    rotation_matrix_t,
)

AttributeDims = Mapping[str, int | Sequence[int]]
_FLIP_DIRECTIONS = ("horizontal", "vertical")


def _index_of(item: object, length: int) -> object:
    """Normalise a row index so that the result of `tensor[index]` stays 2-D."""
    if isinstance(item, tuple):
        # Selecting columns would silently break the fixed column layout.
        raise ShapeError(f"structures are indexed by rows only, got {item!r}; use .tensor[...] for columns")
    if isinstance(item, (int, np.integer)):
        if not -length <= int(item) < length:
            raise IndexError(f"index {int(item)} is out of range for {length} items")
        return slice(int(item), int(item) + 1 if int(item) != -1 else None)
    if isinstance(item, np.ndarray):
        return torch.from_numpy(item)
    if isinstance(item, list):
        return torch.as_tensor(item, dtype=torch.bool if item and isinstance(item[0], bool) else torch.long)
    return item


class BasePoints:
    """Abstract base of `LiDARPoints`, `CameraPoints` and `DepthPoints`.

    Args:
        tensor: `Tensor[N, 3+C]`, numpy array or nested lists; stored as float32 (a tensor keeps
            its device). Empty input becomes `(0, points_dim)`.
        points_dim: number of columns; only needed for empty input (checked otherwise).
        attribute_dims: name -> column (int) or columns (list of int) of the extra data.

    Raises:
        ShapeError: not 2-D, fewer than 3 columns, or an attribute column out of range.
        FormatError: non-numeric data, or NaN/inf in a row (the message names the first one).
    """

    mode: ClassVar[BoxMode]
    # Axis that `rotate(angle)` turns about: the system's vertical axis.
    rotation_axis: ClassVar[int]
    # Columns of the bird's-eye-view plane.
    bev_axes: ClassVar[tuple[int, int]]
    # Column negated by flip("horizontal") and by flip("vertical").
    flip_axes: ClassVar[dict[str, int]]

    def __init__(
        self, tensor: Tensor | np.ndarray | Sequence[Sequence[float]], points_dim: int | None = None,
        attribute_dims: AttributeDims | None = None,
    ) -> None:
        if type(self) is BasePoints:
            raise TypeError("BasePoints is abstract: use LiDARPoints, CameraPoints or DepthPoints")
        # A private copy, so that in-place operations never write into the caller's array.
        data = as_float_tensor(tensor, type(self).__name__, copy=True)
        if data.numel() == 0:
            data = data.reshape(0, points_dim or (data.shape[-1] if data.dim() == 2 else 3))
        if data.dim() != 2 or data.shape[1] < 3:
            raise ShapeError(f"{type(self).__name__} needs shape (N, 3+C) (x, y, z, ...), got {tuple(data.shape)}")
        if points_dim is not None and data.shape[1] != points_dim:
            raise ShapeError(f"{type(self).__name__}: points_dim={points_dim} but the data has {data.shape[1]} columns")
        attrs = self._check_attribute_dims(attribute_dims, data.shape[1])
        check_finite(data, f"{type(self).__name__}", ["x", "y", "z", *self._column_names(attrs, data.shape[1])[3:]])
        self.tensor = data
        self.attribute_dims = attrs

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def _wrap(cls, tensor: Tensor, attribute_dims: dict[str, int | list[int]] | None) -> Self:
        """Build without validation, for tensors derived from an already valid instance."""
        obj = cls.__new__(cls)
        obj.tensor = tensor
        obj.attribute_dims = dict(attribute_dims) if attribute_dims else None
        return obj

    @staticmethod
    def _check_attribute_dims(attribute_dims: AttributeDims | None, width: int) -> dict[str, int | list[int]] | None:
        if not attribute_dims:
            return None
        checked: dict[str, int | list[int]] = {}
        for name, cols in attribute_dims.items():
            col_list = [cols] if isinstance(cols, (int, np.integer)) else list(cols)
            for col in col_list:
                if not 3 <= int(col) < width:
                    raise ShapeError(
                        f"attribute {name!r} points at column {col}, but extra columns are 3..{width - 1} "
                        f"for points of width {width}"
                    )
            checked[str(name)] = int(cols) if isinstance(cols, (int, np.integer)) else [int(c) for c in col_list]
        return checked

    @staticmethod
    def _column_names(attrs: dict[str, int | list[int]] | None, width: int) -> list[str]:
        names = ["x", "y", "z"] + [f"column {i}" for i in range(3, width)]
        for name, cols in (attrs or {}).items():
            for k, col in enumerate([cols] if isinstance(cols, int) else cols):
                names[col] = name if isinstance(cols, int) else f"{name}[{k}]"
        return names

    def new_point(self, data: Tensor | np.ndarray | Sequence[Sequence[float]]) -> Self:
        """Points of the same class, device and attribute names holding `data` (`[N, points_dim]`)."""
        tensor = as_float_tensor(data, type(self).__name__, device=self.tensor.device)
        return type(self)(tensor, points_dim=self.points_dim, attribute_dims=self.attribute_dims)

    # ----------------------------------------------------------------------------- properties
    @property
    def points_dim(self) -> int:
        """Number of columns (3 + extras)."""
        return self.tensor.shape[1]

    @property
    def shape(self) -> torch.Size:
        return self.tensor.shape

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @property
    def coord(self) -> Tensor:
        """`Tensor[N, 3]`: x, y, z (a view)."""
        return self.tensor[:, :3]

    @coord.setter
    def coord(self, value: Tensor | np.ndarray) -> None:
        value = as_float_tensor(value, "coord", device=self.tensor.device)
        if tuple(value.shape) != (len(self), 3):
            raise ShapeError(f"coord must have shape ({len(self)}, 3), got {tuple(value.shape)}")
        self.tensor[:, :3] = value

    @property
    def bev(self) -> Tensor:
        """`Tensor[N, 2]`: coordinates in the bird's-eye-view plane (Camera: x, z)."""
        return self.tensor[:, list(self.bev_axes)]

    def attr(self, name: str) -> Tensor:
        """Values of attribute `name`: `Tensor[N]` for one column, `Tensor[N, K]` for several."""
        if not self.attribute_dims or name not in self.attribute_dims:
            known = sorted(self.attribute_dims or {})
            raise KeyError(f"{type(self).__name__} has no attribute {name!r}; it has {known}")
        return self.tensor[:, self.attribute_dims[name]]

    def __getattr__(self, name: str) -> Tensor:
        # Only reached when normal lookup fails: expose named extra columns as attributes.
        attrs = self.__dict__.get("attribute_dims")
        if attrs and name in attrs:
            return self.tensor[:, attrs[name]]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # ----------------------------------------------------------------------------- geometry
    def rotate(self, rotation: float | Tensor | np.ndarray, axis: int | None = None) -> Tensor:
        """Rotate in place by an angle about `axis` (default: the vertical axis) or by a matrix.

        Args:
            rotation: angle in radians (counter-clockwise seen from the axis' positive end), or a
                transposed rotation matrix `R_t` (`Tensor[3, 3]`) applied as `coord @ R_t`.
            axis: 0, 1 or 2 for an angle; defaults to `rotation_axis`.

        Returns:
            The `Tensor[3, 3]` `R_t` that was applied.
        """
        rot = as_angle_or_rotation(rotation, self.tensor.device, self.tensor.dtype, "rotation")
        if rot.numel() == 1:
            rot = rotation_matrix_t(rot.reshape(1), self.rotation_axis if axis is None else axis)[0]
        self.tensor[:, :3] = self.tensor[:, :3] @ rot
        return rot

    def flip(self, bev_direction: str = "horizontal") -> None:
        """Mirror in place in the BEV plane: negate the column `flip_axes[bev_direction]`."""
        if bev_direction not in _FLIP_DIRECTIONS:
            raise FormatError(f"flip direction must be 'horizontal' or 'vertical', got {bev_direction!r}")
        axis = self.flip_axes[bev_direction]
        self.tensor[:, axis] = -self.tensor[:, axis]

    def translate(self, trans_vector: Sequence[float] | Tensor | np.ndarray) -> None:
        """Add `Tensor[3]` (or one offset per point, `Tensor[N, 3]`) to the coordinates in place."""
        vec = as_float_tensor(trans_vector, "translation", device=self.tensor.device)
        if vec.dim() == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if tuple(vec.shape) not in ((3,), (len(self), 3)):
            raise ShapeError(f"translation must have shape (3,) or ({len(self)}, 3), got {tuple(vec.shape)}")
        self.tensor[:, :3] += vec

    def scale(self, scale_factor: float) -> None:
        """Multiply the coordinates by `scale_factor` in place (about the origin)."""
        self.tensor[:, :3] *= float(scale_factor)

    def in_range_3d(self, point_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: strictly inside `(x_min, y_min, z_min, x_max, y_max, z_max)`."""
        lo, hi = _split_range(point_range, 3, self.tensor)
        return ((self.tensor[:, :3] > lo) & (self.tensor[:, :3] < hi)).all(dim=1)

    def in_range_bev(self, point_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: strictly inside `(min_0, min_1, max_0, max_1)` in the BEV plane."""
        lo, hi = _split_range(point_range, 2, self.tensor)
        bev = self.bev
        return ((bev > lo) & (bev < hi)).all(dim=1)

    def convert_to(self, dst: BoxMode | str, rt_mat: Tensor | np.ndarray | None = None) -> BasePoints:
        """These points in system `dst` (a new object; see `convert_points`)."""
        dst = BoxMode.parse(dst)
        tensor = convert_point_tensor(self.tensor, self.mode, dst, rt_mat)
        return points_class(dst)._wrap(tensor, self.attribute_dims)

    # ------------------------------------------------------------------------ container API
    def __getitem__(self, item: int | slice | Tensor | np.ndarray | list) -> Self:
        """Select points by int, slice, bool mask or index tensor; always `(K, points_dim)`."""
        selected = self.tensor[_index_of(item, len(self))]
        if selected.dim() != 2:
            raise ShapeError(f"indexing points with {item!r} did not give a (K, {self.points_dim}) matrix")
        return self._wrap(selected, self.attribute_dims)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        attrs = f", attribute_dims={self.attribute_dims}" if self.attribute_dims else ""
        return f"{type(self).__name__}(num_points={len(self)}, points_dim={self.points_dim}{attrs}, device={self.device})"

    @classmethod
    def cat(cls, points_list: Sequence[BasePoints]) -> BasePoints:
        """Concatenate point clouds of one class, width and attribute names (never shares memory).

        `LiDARPoints.cat([])` gives an empty `LiDARPoints`; `BasePoints.cat([])` cannot know the
        system and raises `FormatError`.
        """
        if not points_list:
            if cls is BasePoints:
                raise FormatError("BasePoints.cat([]) cannot tell the system; call it on LiDARPoints etc.")
            return cls._wrap(torch.zeros(0, 3), None)
        first = points_list[0]
        for k, p in enumerate(points_list):
            if not isinstance(p, cls) or type(p) is not type(first):
                raise FormatError(f"cannot cat {type(first).__name__} with {type(p).__name__} (item {k})")
            if p.points_dim != first.points_dim or p.attribute_dims != first.attribute_dims:
                raise ShapeError(
                    f"cannot cat points of width {first.points_dim} {first.attribute_dims} with width "
                    f"{p.points_dim} {p.attribute_dims} (item {k})"
                )
        return first._wrap(torch.cat([p.tensor for p in points_list]), first.attribute_dims)

    def to(self, device: torch.device | str, *args: object, **kwargs: object) -> Self:
        """A copy on `device` (a no-op copy when already there)."""
        return self._wrap(self.tensor.to(device, *args, **kwargs), self.attribute_dims)

    def clone(self) -> Self:
        return self._wrap(self.tensor.clone(), self.attribute_dims)

    def numpy(self) -> np.ndarray:
        """The data as a float32 numpy array `[N, points_dim]` (copied to the CPU)."""
        return self.tensor.detach().cpu().numpy()


def _split_range(values: Sequence[float] | Tensor | np.ndarray, dims: int, like: Tensor) -> tuple[Tensor, Tensor]:
    rng = as_float_tensor(values, "range", device=like.device).reshape(-1)
    if rng.numel() != 2 * dims:
        raise ShapeError(f"range must hold {2 * dims} numbers (mins then maxes), got {rng.numel()}")
    return rng[:dims], rng[dims:]


class LiDARPoints(BasePoints):
    """Points in the LiDAR system: x forward, y left, z up.

    `rotate(angle)` turns about +z counter-clockwise; `flip("horizontal")` negates y,
    `flip("vertical")` negates x; `bev` is (x, y).
    """

    mode = BoxMode.LIDAR
    rotation_axis = 2
    bev_axes = (0, 1)
    flip_axes = {"horizontal": 1, "vertical": 0}


class CameraPoints(BasePoints):
    """Points in the Camera system: x right, y down, z forward.

    `rotate(angle)` turns about y (+x toward -z for a positive angle, like the camera yaw);
    `flip("horizontal")` negates x, `flip("vertical")` negates z; `bev` is (x, z).
    """

    mode = BoxMode.CAMERA
    rotation_axis = 1
    bev_axes = (0, 2)
    flip_axes = {"horizontal": 0, "vertical": 2}


class DepthPoints(BasePoints):
    """Points in the Depth system: x right, y forward, z up.

    `rotate(angle)` turns about +z counter-clockwise; `flip("horizontal")` negates x,
    `flip("vertical")` negates y; `bev` is (x, y).
    """

    mode = BoxMode.DEPTH
    rotation_axis = 2
    bev_axes = (0, 1)
    flip_axes = {"horizontal": 0, "vertical": 1}


_POINTS_CLASSES: dict[BoxMode, type[BasePoints]] = {
    BoxMode.LIDAR: LiDARPoints, BoxMode.CAMERA: CameraPoints, BoxMode.DEPTH: DepthPoints,
}


def points_class(mode: BoxMode | str) -> type[BasePoints]:
    """The points class of `mode` (`"lidar"` -> `LiDARPoints`, ...)."""
    return _POINTS_CLASSES[BoxMode.parse(mode)]
