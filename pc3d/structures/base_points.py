"""`BasePoints`: the abstract base of `LiDARPoints`, `CameraPoints` and `DepthPoints`.

A point cloud wraps one float32 `Tensor[N, 3+C]`: `x, y, z` in its system, then extra columns
whose meaning `attribute_dims` names, e.g. `{"intensity": 3}` or `{"color": [3, 4, 5]}`. A named
attribute reads as `points.attr("intensity")` or simply `points.intensity`; `height` and `color`
are properties (None when absent, appended as new columns when set), as in MMDetection3D.

Geometric operations act in place on the coordinates only (as MMDetection3D's do) and follow
the same rules as the box operations, so rotating a scene with `boxes.rotate(angle, points)`
moves boxes and points together.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.checks import check_finite
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.coord_transform import RtMat, convert_point_tensor
from pc3d.structures.tensor_container import TensorContainer
from pc3d.structures.utils import (
    as_angle_or_rotation,
    as_float_tensor,
    rotation_matrix_t,
    split_range,
    translation_vector,
)
from pc3d.structures.utils import scale_factor as positive_scale

AttributeDims = Mapping[str, int | Sequence[int]]
PointData = Tensor | np.ndarray | Sequence[Sequence[float]]
FLIP_DIRECTIONS = ("horizontal", "vertical")


def check_flip_direction(bev_direction: str) -> None:
    """Raise `FormatError` unless `bev_direction` is `"horizontal"` or `"vertical"`.

    Args:
        bev_direction: the direction given to a `flip`.
    """
    if bev_direction not in FLIP_DIRECTIONS:
        raise FormatError(f"flip direction must be 'horizontal' or 'vertical', got {bev_direction!r}")


class BasePoints(TensorContainer):
    """Abstract base of `LiDARPoints`, `CameraPoints` and `DepthPoints`.

    Args:
        tensor: `Tensor[N, 3+C]`, numpy array or nested lists; stored as float32 (a tensor keeps
            its device). Empty input becomes `(0, points_dim)`.
        points_dim: number of columns; only needed for empty input (checked otherwise).
        attribute_dims: name -> column (int) or columns (list of int) of the extra data.

    Raises:
        ShapeError: not 2-D, fewer than 3 columns, or an attribute column out of range.
        FormatError: non-numeric data, or NaN/inf in x, y or z (the message names the first
            point). Other columns may hold NaN (a point whose intensity is unknown is still a
            point, as in MMDetection3D); they are carried along untouched.
    """

    mode: ClassVar[BoxMode]
    # Axis that `rotate(angle)` turns about: the system's vertical axis.
    rotation_axis: ClassVar[int]
    # Columns of the bird's-eye-view plane.
    bev_axes: ClassVar[tuple[int, int]]
    # Column negated by flip("horizontal") and by flip("vertical").
    flip_axes: ClassVar[dict[str, int]]

    def __init__(
        self, tensor: PointData, points_dim: int | None = None, attribute_dims: AttributeDims | None = None
    ) -> None:
        if type(self) is BasePoints:
            raise TypeError("BasePoints is abstract: use LiDARPoints, CameraPoints or DepthPoints")
        name = type(self).__name__
        # A private copy, so that in-place operations never write into the caller's array.
        data = as_float_tensor(tensor, name, copy=True)
        if data.numel() == 0:
            data = data.reshape(0, points_dim or (data.shape[-1] if data.dim() == 2 else 3))
        if data.dim() != 2 or data.shape[1] < 3:
            raise ShapeError(f"{name} needs shape (N, 3+C) (x, y, z, ...), got {tuple(data.shape)}")
        if points_dim is not None and data.shape[1] != points_dim:
            raise ShapeError(f"{name}: points_dim={points_dim} but the data has {data.shape[1]} columns")
        attrs = self._check_attribute_dims(attribute_dims, data.shape[1])
        # Coordinates only: every geometric operation reads them, none reads the attributes.
        check_finite(data[:, :3], name, ("x", "y", "z"))
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
    def _check_attribute_dims(
        attribute_dims: AttributeDims | None, width: int
    ) -> dict[str, int | list[int]] | None:
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
            checked[str(name)] = (
                int(cols) if isinstance(cols, (int, np.integer)) else [int(c) for c in col_list]
            )
        return checked

    def _rewrap(self, tensor: Tensor) -> Self:
        return self._wrap(tensor, self.attribute_dims)

    def new_point(self, data: PointData) -> Self:
        """Points of the same class, device and attribute names holding `data`.

        Args:
            data: `[K, points_dim]` points (tensor, array or lists), checked like the
                constructor's.
        """
        tensor = as_float_tensor(data, type(self).__name__, device=self.tensor.device)
        return type(self)(tensor, points_dim=self.points_dim, attribute_dims=self.attribute_dims)

    # ----------------------------------------------------------------------------- properties
    @property
    def points_dim(self) -> int:
        """Number of columns (3 + extras)."""
        return self.tensor.shape[1]

    @property
    def coord(self) -> Tensor:
        """`Tensor[N, 3]`: x, y, z (a view); settable from anything of `N * 3` numbers."""
        return self.tensor[:, :3]

    @coord.setter
    def coord(self, value: Tensor | np.ndarray) -> None:
        """Set x, y, z from `N * 3` numbers."""
        self.tensor[:, :3] = self._column_values(value, 3, "coord")

    @property
    def bev(self) -> Tensor:
        """`Tensor[N, 2]`: coordinates in the bird's-eye-view plane (Camera: x, z)."""
        return self.tensor[:, list(self.bev_axes)]

    def _column_values(self, value: Tensor | np.ndarray, width: int, what: str) -> Tensor:
        tensor = as_float_tensor(value, what, device=self.tensor.device)
        if tensor.numel() != len(self) * width:
            shape = (len(self), width) if width > 1 else (len(self),)
            raise ShapeError(
                f"{what} must have shape {shape} (or as many values), got shape {tuple(tensor.shape)}"
            )
        return tensor.reshape(len(self), width) if width > 1 else tensor.reshape(len(self))

    def _set_attribute(self, name: str, values: Tensor) -> None:
        """Write attribute `name`, appending its columns when the points do not have it yet."""
        if self.attribute_dims and name in self.attribute_dims:
            self.tensor[:, self.attribute_dims[name]] = values
            return
        width = self.points_dim
        columns = values.reshape(len(self), -1)
        self.tensor = torch.cat([self.tensor, columns], dim=1)
        attrs = dict(self.attribute_dims or {})
        attrs[name] = width if columns.shape[1] == 1 else list(range(width, width + columns.shape[1]))
        self.attribute_dims = attrs

    @property
    def height(self) -> Tensor | None:
        """`Tensor[N]` of the attribute `"height"` (e.g. above the ground), None without one."""
        return self.attr("height") if self.attribute_dims and "height" in self.attribute_dims else None

    @height.setter
    def height(self, value: Tensor | np.ndarray) -> None:
        """Set the heights (`N` numbers), appending a `"height"` column when there is none."""
        self._set_attribute("height", self._column_values(value, 1, "height"))

    @property
    def color(self) -> Tensor | None:
        """`Tensor[N, 3]` of the attribute `"color"`, None without one."""
        return self.attr("color") if self.attribute_dims and "color" in self.attribute_dims else None

    @color.setter
    def color(self, value: Tensor | np.ndarray) -> None:
        """Set the colours (`N * 3` numbers, warning outside [0, 255]), appending 3 `"color"`
        columns when there are none."""
        colors = self._column_values(value, 3, "color")
        if colors.numel() and (bool((colors >= 256).any()) or bool((colors < 0).any())):
            warnings.warn("point colors beyond [0, 255]", stacklevel=2)
        self._set_attribute("color", colors)

    def attr(self, name: str) -> Tensor:
        """Values of attribute `name`: `Tensor[N]` for one column, `Tensor[N, K]` for several.

        Args:
            name: a key of `attribute_dims`.

        Raises:
            KeyError: an unknown name (the message lists the known ones).
        """
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

        Raises:
            ShapeError: neither an angle nor a 3x3 matrix.
            FormatError: a NaN or infinite angle or matrix.
        """
        rot = as_angle_or_rotation(rotation, self.tensor.device, self.tensor.dtype, "rotation")
        if rot.numel() == 1:
            rot = rotation_matrix_t(rot.reshape(1), self.rotation_axis if axis is None else axis)[0]
        self.tensor[:, :3] = self.tensor[:, :3] @ rot
        return rot

    def flip(self, bev_direction: str = "horizontal") -> None:
        """Mirror in place in the BEV plane: negate the column `flip_axes[bev_direction]`.

        Args:
            bev_direction: `"horizontal"` or `"vertical"` (LiDAR: y | x, Camera: x | z, Depth:
                x | y).
        """
        check_flip_direction(bev_direction)
        axis = self.flip_axes[bev_direction]
        self.tensor[:, axis] = -self.tensor[:, axis]

    def translate(self, trans_vector: Sequence[float] | Tensor | np.ndarray) -> None:
        """Move the points in place.

        Args:
            trans_vector: `[3]` (or `[1, 3]`), or one offset per point, `[N, 3]`.

        Raises:
            ShapeError: any other shape.
            FormatError: a NaN or infinite offset.
        """
        self.tensor[:, :3] += translation_vector(trans_vector, len(self), self.tensor.device)

    def scale(self, scale_factor: float) -> None:
        """Multiply the coordinates by `scale_factor` in place (about the origin).

        Args:
            scale_factor: a positive finite factor.

        Raises:
            FormatError: a factor that is not positive and finite.
        """
        self.tensor[:, :3] *= positive_scale(scale_factor)

    def shuffle(self) -> Tensor:
        """Put the points in a random order (torch's generator), in place.

        Returns:
            `LongTensor[N]`: the permutation applied (new row i is old row `perm[i]`).
        """
        perm = torch.randperm(len(self), device=self.tensor.device)
        self.tensor = self.tensor[perm]
        return perm

    def in_range_3d(self, point_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: strictly inside a range.

        Args:
            point_range: `(x_min, y_min, z_min, x_max, y_max, z_max)`.

        Raises:
            ShapeError: not 6 numbers.
        """
        lo, hi = split_range(point_range, 3, self.tensor)
        return ((self.tensor[:, :3] > lo) & (self.tensor[:, :3] < hi)).all(dim=1)

    def in_range_bev(self, point_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: strictly inside a range of the BEV plane.

        Args:
            point_range: `(min_0, min_1, max_0, max_1)` along the BEV axes (Camera: x, z).

        Raises:
            ShapeError: not 4 numbers.
        """
        lo, hi = split_range(point_range, 2, self.tensor)
        bev = self.bev
        return ((bev > lo) & (bev < hi)).all(dim=1)

    def convert_to(self, dst: BoxMode | str, rt_mat: RtMat = None) -> BasePoints:
        """These points in system `dst`, as a new object of `dst`'s points class.

        Args:
            dst: the target system.
            rt_mat: 3x3, 3x4 or 4x4 matrix taking this system's coordinates to `dst`'s; None
                for the default axis permutation (see `convert_points`).
        """
        from pc3d.structures.points import points_class

        dst = BoxMode.parse(dst)
        tensor = convert_point_tensor(self.tensor, self.mode, dst, rt_mat)
        return points_class(dst)._wrap(tensor, self.attribute_dims)

    # ------------------------------------------------------------------------ container API
    def __repr__(self) -> str:
        attrs = f", attribute_dims={self.attribute_dims}" if self.attribute_dims else ""
        return f"{type(self).__name__}(num_points={len(self)}, points_dim={self.points_dim}{attrs}, device={self.device})"

    @classmethod
    def cat(cls, points_list: Sequence[BasePoints]) -> BasePoints:
        """Concatenate point clouds of one class, width and attribute names (never shares memory).

        Args:
            points_list: point clouds of one class, width and attribute names.

        Returns:
            The concatenation; `LiDARPoints.cat([])` gives an empty `LiDARPoints`.

        Raises:
            FormatError: mixed classes, or `BasePoints.cat([])` (it cannot know the system).
            ShapeError: mixed widths or attribute names.
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
