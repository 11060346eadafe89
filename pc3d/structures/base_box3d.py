"""`Boxes3D`: the abstract base of `LiDARBoxes3D`, `CameraBoxes3D` and `DepthBoxes3D`.

All the behaviour lives here, driven by a handful of class attributes that describe each system
(which axis is vertical and which way it points, which plane is the bird's-eye view, which axis
each flip negates). The concrete classes only set those attributes and draw their conventions.

Conventions are MMDetection3D 1.x's: a box is one row `x, y, z, x_size, y_size, z_size, yaw,
extras...` of a float32 `Tensor[N, 7+C]`, `(x, y, z)` is the bottom centre, and operations
(`rotate`, `flip`, `translate`, `scale`, `limit_yaw`) modify the boxes in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import ClassVar, Self, TypeVar

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.points_in_boxes import points_in_boxes_first, points_in_boxes_mask
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.coord_transform import convert_box_tensor, convert_point_tensor
from pc3d.structures.points import BasePoints, _index_of, _split_range
from pc3d.structures.utils import (
    as_angle_or_rotation,
    as_float_tensor,
    check_finite,
    first_bad_row,
    limit_period,
    rotation_matrix_t,
)

PointsT = TypeVar("PointsT", Tensor, np.ndarray, BasePoints)
BoxData = Tensor | np.ndarray | Sequence[Sequence[float]]

# Corners of the unit cube in MMDetection3D's order (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0,
# x1y0z1, x1y1z1, x1y1z0), so that code indexing corners carries over from it.
_UNIT_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0))
_FLIP_DIRECTIONS = ("horizontal", "vertical")

_BOX_CLASSES: dict[BoxMode, type[Boxes3D]] = {}


class Boxes3D:
    """3D boxes in one coordinate system: a float32 `Tensor[N, 7+C]` with small methods.

    Columns: bottom centre `x, y, z`; sizes `x_size, y_size, z_size` along the box's own axes
    before rotation; `yaw`; then extras carried through every operation and conversion. When
    there are at least 9 columns, columns 7 and 8 are the BEV velocity (along the two BEV axes
    of the system) and are rotated, flipped and scaled with the boxes.

    Args:
        tensor: `Tensor[N, 7+C]` (or `[N, 6]` without yaw), numpy array or nested lists; stored
            as float32 (a tensor keeps its device). Empty input gives shape `(0, box_dim or 7)`.
        box_dim: expected number of columns; only needed for empty input (checked otherwise).
        with_yaw: False marks axis-aligned boxes: the yaw column is set to 0. Six-column input
            implies it and gains a zero yaw column.
        origin: relative position of the given centre inside the box, e.g. `(0.5, 0.5, 0.5)`
            for gravity centres; converted to the class's bottom-centre origin (the offset
            is taken along the box's own, yawed, axes).

    Raises:
        ShapeError: not 2-D, fewer than 6 columns, or `box_dim` disagreeing with the data.
        FormatError: non-numeric data, NaN/inf, or a negative size (naming the row and column).
    """

    mode: ClassVar[BoxMode]
    # Axis the yaw turns about, and the vertical axis with the sign of "up" along it.
    yaw_axis: ClassVar[int]
    up_sign: ClassVar[float]
    # Relative position of the stored centre in the box (the bottom centre).
    default_origin: ClassVar[tuple[float, float, float]]
    # Columns of the BEV plane; the BEV yaw is `bev_yaw_sign * yaw` (Camera's y points down).
    bev_axes: ClassVar[tuple[int, int]]
    bev_yaw_sign: ClassVar[float]
    # Column negated by flip("horizontal") and by flip("vertical").
    flip_axes: ClassVar[dict[str, int]]
    size_names: ClassVar[tuple[str, str, str]] = ("x_size", "y_size", "z_size")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "mode" in cls.__dict__:
            _BOX_CLASSES[cls.mode] = cls

    def __init__(
        self, tensor: BoxData, box_dim: int | None = None, with_yaw: bool = True,
        origin: Sequence[float] | None = None,
    ) -> None:
        if "mode" not in type(self).__dict__:
            raise TypeError(f"{type(self).__name__} is abstract: use LiDARBoxes3D, CameraBoxes3D or DepthBoxes3D")
        name = type(self).__name__
        # A private copy, so that in-place operations never write into the caller's array.
        data = as_float_tensor(tensor, name, copy=True)
        if data.numel() == 0:
            data = data.reshape(0, box_dim or (data.shape[-1] if data.dim() == 2 and data.shape[-1] >= 6 else 7))
        if data.dim() != 2 or data.shape[1] < 6:
            raise ShapeError(
                f"{name} needs shape (N, 7+C): x, y, z, x_size, y_size, z_size, yaw[, extras] "
                f"(or (N, 6) without yaw); got {tuple(data.shape)}"
            )
        if box_dim is not None and data.shape[1] != box_dim:
            raise ShapeError(f"{name}: box_dim={box_dim} but the data has {data.shape[1]} columns")
        check_finite(data, name, self._column_names(data.shape[1]))
        negative = data[:, 3:6] < 0
        if bool(negative.any()):
            row = first_bad_row(negative)
            col = 3 + int(torch.nonzero(negative[row])[0, 0])
            raise FormatError(
                f"{name} row {row}: {self._column_names(7)[col]} (column {col}) is {data[row, col].item()}; "
                "sizes must not be negative"
            )
        if data.shape[1] == 6:
            data = torch.cat([data, data.new_zeros(len(data), 1)], dim=1)
            with_yaw = False
        elif not with_yaw:
            data[:, 6] = 0
        if origin is not None:
            # The offset to the bottom centre is along the box's own axes: turn it by the yaw.
            offset = data[:, 3:6] * self._origin_shift(origin, data)
            a, b, v = self._plane_axes()
            cos, sin = torch.cos(data[:, 6]), torch.sin(data[:, 6])
            turned = torch.empty_like(offset)
            turned[:, a] = offset[:, a] * cos - offset[:, b] * sin
            turned[:, b] = offset[:, a] * sin + offset[:, b] * cos
            turned[:, v] = offset[:, v]
            # Out of place, so that gradients can flow through the construction.
            data = torch.cat([data[:, :3] + turned, data[:, 3:]], dim=1)
        self.tensor = data
        self.with_yaw = with_yaw

    @classmethod
    def _plane_axes(cls) -> tuple[int, int, int]:
        """`(a, b, v)`: the yaw turns right-handedly about axis v, i.e. from axis a toward b."""
        v = cls.yaw_axis
        return (v + 1) % 3, (v + 2) % 3, v

    def _column_names(self, width: int) -> list[str]:
        return ["x", "y", "z", *self.size_names, "yaw", *(f"column {i}" for i in range(7, width))]

    def _origin_shift(self, origin: Sequence[float], like: Tensor) -> Tensor:
        src = as_float_tensor(origin, "origin", device=like.device).reshape(-1)
        if src.numel() != 3:
            raise ShapeError(f"origin must be 3 relative coordinates (ox, oy, oz), got {src.numel()} numbers")
        return like.new_tensor(self.default_origin) - src

    @classmethod
    def _wrap(cls, tensor: Tensor, with_yaw: bool = True) -> Self:
        """Build without validation, for tensors derived from an already valid instance."""
        obj = cls.__new__(cls)
        obj.tensor = tensor
        obj.with_yaw = with_yaw
        return obj

    def new_box(self, data: BoxData) -> Self:
        """Boxes of the same class, width, `with_yaw` and device holding `data`."""
        tensor = as_float_tensor(data, type(self).__name__, device=self.tensor.device)
        return type(self)(tensor, box_dim=self.box_dim, with_yaw=self.with_yaw)

    # ----------------------------------------------------------------------------- properties
    @property
    def box_dim(self) -> int:
        """Number of columns (7 + extras)."""
        return self.tensor.shape[1]

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    @property
    def bottom_center(self) -> Tensor:
        """`Tensor[N, 3]`: the stored centre, at the bottom face (a view)."""
        return self.tensor[:, :3]

    @property
    def center(self) -> Tensor:
        """Alias of `bottom_center` (MMDetection3D's `center`)."""
        return self.bottom_center

    @property
    def gravity_center(self) -> Tensor:
        """`Tensor[N, 3]`: the centre of the box volume (half the height above the bottom)."""
        center = self.tensor[:, :3].clone()
        center[:, self.yaw_axis] += self.up_sign * self.height / 2
        return center

    @property
    def dims(self) -> Tensor:
        """`Tensor[N, 3]`: `x_size, y_size, z_size` (a view)."""
        return self.tensor[:, 3:6]

    @property
    def yaw(self) -> Tensor:
        """`Tensor[N]`: yaw in radians (a view)."""
        return self.tensor[:, 6]

    @property
    def height(self) -> Tensor:
        """`Tensor[N]`: extent along the vertical axis."""
        return self.tensor[:, 3 + self.yaw_axis]

    @property
    def bottom_height(self) -> Tensor:
        """`Tensor[N]`: vertical coordinate of the bottom face."""
        return self.tensor[:, self.yaw_axis]

    @property
    def top_height(self) -> Tensor:
        """`Tensor[N]`: vertical coordinate of the top face (below the bottom's in Camera, y down)."""
        return self.bottom_height + self.up_sign * self.height

    @property
    def volume(self) -> Tensor:
        """`Tensor[N]`: `x_size * y_size * z_size`."""
        return self.tensor[:, 3:6].prod(dim=1)

    @property
    def corners(self) -> Tensor:
        """`Tensor[N, 8, 3]`: corners in MMDetection3D's order; the class docstring draws it."""
        t = self.tensor
        unit = t.new_tensor(_UNIT_CORNERS) - t.new_tensor(self.default_origin)  # [8, 3]
        # Turn by the yaw written out per component: a batched 3x3 matmul is several times
        # slower for such small matrices.
        a, b, v = self._plane_axes()
        along_a = t[:, 3 + a, None] * unit[:, a]  # [N, 8] corner offsets in the box frame
        along_b = t[:, 3 + b, None] * unit[:, b]
        cos, sin = torch.cos(t[:, 6:7]), torch.sin(t[:, 6:7])
        corners = t.new_empty(len(t), 8, 3)
        corners[..., a] = along_a * cos - along_b * sin + t[:, a, None]
        corners[..., b] = along_a * sin + along_b * cos + t[:, b, None]
        corners[..., v] = t[:, 3 + v, None] * unit[:, v] + t[:, v, None]
        return corners

    @property
    def bev(self) -> Tensor:
        """`Tensor[N, 5]`: `c0, c1, size0, size1, yaw` in the BEV plane (Camera: x, z, -yaw)."""
        a, b = self.bev_axes
        bev = self.tensor[:, [a, b, 3 + a, 3 + b, 6]]
        bev[:, 4] *= self.bev_yaw_sign
        return bev

    @property
    def nearest_bev(self) -> Tensor:
        """`Tensor[N, 4]`: axis-aligned BEV boxes `x1, y1, x2, y2` nearest to the rotated ones.

        As MMDetection3D: a box turned by more than 45 degrees (mod 180) swaps its two sizes.
        """
        bev = self.bev
        turned = limit_period(bev[:, 4], 0.5, math.pi).abs() > math.pi / 4
        sizes = torch.where(turned[:, None], bev[:, [3, 2]], bev[:, 2:4])
        return torch.cat([bev[:, :2] - sizes / 2, bev[:, :2] + sizes / 2], dim=1)

    def nonempty(self, threshold: float = 0.0) -> Tensor:
        """`BoolTensor[N]`: every size larger than `threshold`."""
        return (self.tensor[:, 3:6] > threshold).all(dim=1)

    # ----------------------------------------------------------------------------- geometry
    def _velocity_rows(self) -> bool:
        return self.box_dim >= 9

    def rotate(
        self, angle: float | Tensor | np.ndarray, points: PointsT | None = None
    ) -> tuple[PointsT, Tensor] | None:
        """Rotate the boxes (and `points`, if given) in place about the vertical axis.

        Args:
            angle: radians, right-handed about the system's yaw axis, so that the yaw grows by
                `angle` in every system (LiDAR/Depth: counter-clockwise seen from above; Camera,
                whose y points down: clockwise seen from above). Or a transposed rotation
                matrix `R_t` (`[3, 3]`, applied as `xyz @ R_t`) about that axis.
            points: `BasePoints` of the same system, or a `Tensor`/`ndarray` `[M, 3+C]`,
                rotated in place with the same matrix.

        Returns:
            `(points, R_t)` when `points` is given, else None (MMDetection3D's contract).
        """
        rot = as_angle_or_rotation(angle, self.tensor.device, self.tensor.dtype, "rotation angle")
        if rot.numel() == 1:
            theta = rot.reshape(1)
            rot_t = rotation_matrix_t(theta, self.yaw_axis)[0]
        else:
            rot_t = rot
            sin = rot_t[0, 1] if self.yaw_axis == 2 else rot_t[2, 0]
            theta = torch.atan2(sin, rot_t[0, 0]).reshape(1)
        self.tensor[:, :3] = self.tensor[:, :3] @ rot_t
        a, b = self.bev_axes
        if self.with_yaw:
            self.tensor[:, 6] += theta
        else:
            # Axis-aligned boxes become the axis-aligned boxes enclosing the rotated ones.
            cos, sin = theta.cos().abs(), theta.sin().abs()
            size_a, size_b = self.tensor[:, 3 + a].clone(), self.tensor[:, 3 + b].clone()
            self.tensor[:, 3 + a] = cos * size_a + sin * size_b
            self.tensor[:, 3 + b] = sin * size_a + cos * size_b
        if self._velocity_rows():
            self.tensor[:, 7:9] = self.tensor[:, 7:9] @ rot_t[[a, b]][:, [a, b]]
        if points is None:
            return None
        if isinstance(points, BasePoints):
            self._check_points_mode(points)
            points.rotate(rot_t)
        elif isinstance(points, Tensor):
            points[:, :3] = points[:, :3] @ rot_t.to(points.device, points.dtype)
        elif isinstance(points, np.ndarray):
            points[:, :3] = points[:, :3] @ rot_t.cpu().numpy().astype(points.dtype)
        else:
            raise FormatError(f"points must be BasePoints, a Tensor or an ndarray, got {type(points).__name__}")
        return points, rot_t

    def flip(self, bev_direction: str = "horizontal", points: PointsT | None = None) -> PointsT | None:
        """Mirror the boxes (and `points`) in place in the BEV plane; returns `points` if given.

        The flipped axis is `flip_axes[bev_direction]`. Negating x turns the yaw into
        `pi - yaw`; negating the other BEV axis turns it into `-yaw` (as MMDetection3D).
        """
        if bev_direction not in _FLIP_DIRECTIONS:
            raise FormatError(f"flip direction must be 'horizontal' or 'vertical', got {bev_direction!r}")
        axis = self.flip_axes[bev_direction]
        self.tensor[:, axis] = -self.tensor[:, axis]
        if self.with_yaw:
            self.tensor[:, 6] = (math.pi - self.tensor[:, 6]) if axis == 0 else -self.tensor[:, 6]
        if self._velocity_rows():
            col = 7 + self.bev_axes.index(axis)
            self.tensor[:, col] = -self.tensor[:, col]
        if points is None:
            return None
        if isinstance(points, BasePoints):
            self._check_points_mode(points)
            points.flip(bev_direction)
        elif isinstance(points, (Tensor, np.ndarray)):
            points[:, axis] = -points[:, axis]
        else:
            raise FormatError(f"points must be BasePoints, a Tensor or an ndarray, got {type(points).__name__}")
        return points

    def translate(self, trans_vector: Sequence[float] | Tensor | np.ndarray) -> None:
        """Add `[3]` (or one offset per box, `[N, 3]`) to the centres in place."""
        vec = as_float_tensor(trans_vector, "translation", device=self.tensor.device)
        if vec.dim() == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if tuple(vec.shape) not in ((3,), (len(self), 3)):
            raise ShapeError(f"translation must have shape (3,) or ({len(self)}, 3), got {tuple(vec.shape)}")
        self.tensor[:, :3] += vec

    def scale(self, scale_factor: float) -> None:
        """Scale centres, sizes (and velocity) by `scale_factor > 0` in place, about the origin."""
        factor = float(scale_factor)
        if not (math.isfinite(factor) and factor > 0):
            raise FormatError(f"scale factor must be a positive finite number, got {scale_factor!r}")
        self.tensor[:, :6] *= factor
        if self._velocity_rows():
            self.tensor[:, 7:9] *= factor

    def limit_yaw(self, offset: float = 0.5, period: float = 2 * math.pi) -> None:
        """Wrap the yaw into `[-offset * period, (1 - offset) * period)` in place."""
        self.tensor[:, 6] = limit_period(self.tensor[:, 6], offset, period)

    def in_range_bev(self, box_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: BEV centre strictly inside `(min0, min1, max0, max1)` (Camera: x, z)."""
        lo, hi = _split_range(box_range, 2, self.tensor)
        centre = self.tensor[:, list(self.bev_axes)]
        return ((centre > lo) & (centre < hi)).all(dim=1)

    def in_range_3d(self, box_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: bottom centre strictly inside `(x_min, y_min, z_min, x_max, y_max, z_max)`."""
        lo, hi = _split_range(box_range, 3, self.tensor)
        return ((self.tensor[:, :3] > lo) & (self.tensor[:, :3] < hi)).all(dim=1)

    # ------------------------------------------------------------------------ points in boxes
    def _check_points_mode(self, points: BasePoints) -> None:
        if points.mode is not self.mode:
            raise FormatError(
                f"points are {type(points).__name__} but boxes are {type(self).__name__}; "
                f"convert the points with points.convert_to({self.mode.value!r}, rt_mat) first"
            )

    def _z_up_points_and_boxes(self, points: Tensor | np.ndarray | BasePoints) -> tuple[Tensor, Tensor]:
        if isinstance(points, BasePoints):
            self._check_points_mode(points)
            xyz = points.tensor[:, :3].to(self.tensor.device)
        else:
            xyz = as_float_tensor(points, "points", device=self.tensor.device)
            if xyz.dim() != 2 or xyz.shape[1] < 3:
                raise ShapeError(f"points must have shape (M, 3+C), got {tuple(xyz.shape)}")
            xyz = xyz[:, :3]
        boxes = self.tensor[:, :7]
        if not self.mode.z_up:
            # The kernel works on z-up boxes: view both in LiDAR axes (a pure permutation).
            xyz = convert_point_tensor(xyz, self.mode, BoxMode.LIDAR)
            boxes = convert_box_tensor(boxes, self.mode, BoxMode.LIDAR)
        return xyz, boxes

    def points_in_boxes(self, points: Tensor | np.ndarray | BasePoints) -> Tensor:
        """`LongTensor[M]`: index of the first box holding each point, -1 for none (closed faces)."""
        return points_in_boxes_first(*self._z_up_points_and_boxes(points))

    def points_in_boxes_all(self, points: Tensor | np.ndarray | BasePoints) -> Tensor:
        """`BoolTensor[M, N]`: entry (i, j) is True when point i lies in box j."""
        return points_in_boxes_mask(*self._z_up_points_and_boxes(points))

    # MMDetection3D 1.x's name for `points_in_boxes`.
    points_in_boxes_part = points_in_boxes

    # ----------------------------------------------------------------------------- conversion
    def convert_to(self, dst: BoxMode | str, rt_mat: Tensor | np.ndarray | None = None) -> Boxes3D:
        """These boxes in system `dst` (a new object; see `convert_boxes`)."""
        dst = BoxMode.parse(dst)
        tensor = convert_box_tensor(self.tensor, self.mode, dst, rt_mat, with_yaw=self.with_yaw)
        return box_class(dst)._wrap(tensor, self.with_yaw)

    # ------------------------------------------------------------------------ container API
    def __getitem__(self, item: int | slice | Tensor | np.ndarray | list) -> Self:
        """Select boxes by int, slice, bool mask or index tensor; always `(K, box_dim)`."""
        selected = self.tensor[_index_of(item, len(self))]
        if selected.dim() != 2:
            raise ShapeError(f"indexing boxes with {item!r} did not give a (K, {self.box_dim}) matrix")
        return self._wrap(selected, self.with_yaw)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_boxes={len(self)}, box_dim={self.box_dim}, with_yaw={self.with_yaw}, "
            f"device={self.device},\n{self.tensor})"
        )

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes3D]) -> Boxes3D:
        """Concatenate boxes of one class and width into new boxes (never shares memory).

        `LiDARBoxes3D.cat([])` gives empty `LiDARBoxes3D`; `Boxes3D.cat([])` cannot know the
        system and raises `FormatError`.
        """
        if not boxes_list:
            if "mode" not in cls.__dict__:
                raise FormatError("Boxes3D.cat([]) cannot tell the system; call it on LiDARBoxes3D etc.")
            return cls._wrap(torch.zeros(0, 7))
        first = boxes_list[0]
        for k, b in enumerate(boxes_list):
            if not isinstance(b, cls) or type(b) is not type(first):
                raise FormatError(f"cannot cat {type(first).__name__} with {type(b).__name__} (item {k})")
            if b.box_dim != first.box_dim:
                raise ShapeError(f"cannot cat boxes of width {first.box_dim} and {b.box_dim} (item {k})")
        return first._wrap(torch.cat([b.tensor for b in boxes_list]), all(b.with_yaw for b in boxes_list))

    def to(self, device: torch.device | str, *args: object, **kwargs: object) -> Self:
        """A copy on `device` (the same object's data when already there, as `Tensor.to`)."""
        return self._wrap(self.tensor.to(device, *args, **kwargs), self.with_yaw)

    def clone(self) -> Self:
        return self._wrap(self.tensor.clone(), self.with_yaw)

    def numpy(self) -> np.ndarray:
        """The boxes as a float32 numpy array `[N, box_dim]` (copied to the CPU)."""
        return self.tensor.detach().cpu().numpy()


def box_class(mode: BoxMode | str) -> type[Boxes3D]:
    """The box class of `mode` (`"lidar"` -> `LiDARBoxes3D`, ...)."""
    return _BOX_CLASSES[BoxMode.parse(mode)]
