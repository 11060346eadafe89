"""`Boxes3D`: the abstract base of `LiDARBoxes3D`, `CameraBoxes3D` and `DepthBoxes3D`.

All the behaviour lives here and in two mixins, driven by a handful of class attributes that
describe each system (which axis is vertical and which way it points, which plane is the
bird's-eye view, which axis each flip negates). The concrete classes only set those attributes
and draw their conventions. This module holds construction, the derived quantities (centres,
corners, BEV), conversion and the container API; `box_transforms` the in-place operations
(`rotate`, `flip`, ...); `box_ops` what calls `pc3d.ops` (points in boxes, overlaps, NMS).

Conventions are MMDetection3D 1.x's: a box is one row `x, y, z, x_size, y_size, z_size, yaw,
extras...` of a float32 `Tensor[N, 7+C]`, `(x, y, z)` is the bottom centre, and operations
modify the boxes in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.checks import check_finite, check_non_negative
from pc3d.structures.angles import limit_period
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.box_ops import BoxOpsMixin
from pc3d.structures.box_transforms import BoxTransformsMixin
from pc3d.structures.coord_transform import RtMat, convert_box_tensor
from pc3d.structures.tensor_container import TensorContainer
from pc3d.structures.utils import as_float_tensor, split_range

BoxData = Tensor | np.ndarray | Sequence[Sequence[float]]

# Corners of the unit cube in MMDetection3D's order (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0,
# x1y0z1, x1y1z1, x1y1z0), so that code indexing corners carries over from it.
UNIT_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0))

_BOX_CLASSES: dict[BoxMode, type[Boxes3D]] = {}


class Boxes3D(TensorContainer, BoxTransformsMixin, BoxOpsMixin):
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
            is taken along the box's own, yawed, axes). None means the class's own origin.

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
    # MMDetection3D's name of `yaw_axis`.
    YAW_AXIS: ClassVar[int]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "mode" in cls.__dict__:
            _BOX_CLASSES[cls.mode] = cls
            cls.YAW_AXIS = cls.yaw_axis

    def __init__(
        self,
        tensor: BoxData,
        box_dim: int | None = None,
        with_yaw: bool = True,
        origin: Sequence[float] | None = None,
    ) -> None:
        if "mode" not in type(self).__dict__:
            raise TypeError(
                f"{type(self).__name__} is abstract: use LiDARBoxes3D, CameraBoxes3D or DepthBoxes3D"
            )
        data = self._checked_data(tensor, box_dim)
        if data.shape[1] == 6:
            data = torch.cat([data, data.new_zeros(len(data), 1)], dim=1)
            with_yaw = False
        elif not with_yaw:
            data[:, 6] = 0
        if origin is not None:
            data = self._moved_to_bottom_centre(data, origin)
        self.tensor = data
        self.with_yaw = with_yaw

    def _checked_data(self, tensor: BoxData, box_dim: int | None) -> Tensor:
        """A private float32 copy of `tensor` (in-place operations never write into the
        caller's array), checked for shape, finiteness and sizes."""
        name = type(self).__name__
        data = as_float_tensor(tensor, name, copy=True)
        if data.numel() == 0:
            data = data.reshape(
                0, box_dim or (data.shape[-1] if data.dim() == 2 and data.shape[-1] >= 6 else 7)
            )
        if data.dim() != 2 or data.shape[1] < 6:
            raise ShapeError(
                f"{name} needs shape (N, 7+C): x, y, z, x_size, y_size, z_size, yaw[, extras] "
                f"(or (N, 6) without yaw); got {tuple(data.shape)}"
            )
        if box_dim is not None and data.shape[1] != box_dim:
            raise ShapeError(f"{name}: box_dim={box_dim} but the data has {data.shape[1]} columns")
        columns = self._column_names(data.shape[1])
        check_finite(data, name, columns)
        check_non_negative(data[:, 3:6], name, columns, 3)
        return data

    def _moved_to_bottom_centre(self, data: Tensor, origin: Sequence[float]) -> Tensor:
        """`data` whose centres are at relative position `origin`, moved to the bottom centre."""
        src = as_float_tensor(origin, "origin", device=data.device).reshape(-1)
        if src.numel() != 3:
            raise ShapeError(f"origin must be 3 relative coordinates (ox, oy, oz), got {src.numel()} numbers")
        # The offset to the bottom centre is along the box's own axes: turn it by the yaw.
        offset = data[:, 3:6] * (data.new_tensor(self.default_origin) - src)
        a, b, v = self._plane_axes()
        cos, sin = torch.cos(data[:, 6]), torch.sin(data[:, 6])
        turned = torch.empty_like(offset)
        turned[:, a] = offset[:, a] * cos - offset[:, b] * sin
        turned[:, b] = offset[:, a] * sin + offset[:, b] * cos
        turned[:, v] = offset[:, v]
        # Out of place, so that gradients can flow through the construction.
        return torch.cat([data[:, :3] + turned, data[:, 3:]], dim=1)

    @classmethod
    def _plane_axes(cls) -> tuple[int, int, int]:
        """`(a, b, v)`: the yaw turns right-handedly about axis v, i.e. from axis a toward b."""
        v = cls.yaw_axis
        return (v + 1) % 3, (v + 2) % 3, v

    def _column_names(self, width: int) -> list[str]:
        return ["x", "y", "z", *self.size_names, "yaw", *(f"column {i}" for i in range(7, width))]

    @classmethod
    def _wrap(cls, tensor: Tensor, with_yaw: bool = True) -> Self:
        """Build without validation, for tensors derived from an already valid instance."""
        obj = cls.__new__(cls)
        obj.tensor = tensor
        obj.with_yaw = with_yaw
        return obj

    def _rewrap(self, tensor: Tensor) -> Self:
        return self._wrap(tensor, self.with_yaw)

    def new_box(self, data: BoxData) -> Self:
        """Boxes of the same class, width, `with_yaw` and device holding `data`.

        Args:
            data: `[K, box_dim]` boxes (tensor, array or lists), checked like the constructor's.
        """
        tensor = as_float_tensor(data, type(self).__name__, device=self.tensor.device)
        return type(self)(tensor, box_dim=self.box_dim, with_yaw=self.with_yaw)

    # ----------------------------------------------------------------------------- properties
    @property
    def box_dim(self) -> int:
        """Number of columns (7 + extras)."""
        return self.tensor.shape[1]

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
        unit = t.new_tensor(UNIT_CORNERS) - t.new_tensor(self.default_origin)  # [8, 3]
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
        """`BoolTensor[N]`: boxes whose three sizes are all larger than `threshold`.

        Args:
            threshold: metres.
        """
        return (self.tensor[:, 3:6] > threshold).all(dim=1)

    def in_range_bev(self, box_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: BEV centre strictly inside a range.

        Args:
            box_range: `(min0, min1, max0, max1)` along the BEV axes (LiDAR/Depth: x, y;
                Camera: x, z).

        Raises:
            ShapeError: not 4 numbers.
        """
        lo, hi = split_range(box_range, 2, self.tensor)
        centre = self.tensor[:, list(self.bev_axes)]
        return ((centre > lo) & (centre < hi)).all(dim=1)

    def in_range_3d(self, box_range: Sequence[float] | Tensor | np.ndarray) -> Tensor:
        """`BoolTensor[N]`: gravity (volume) centre strictly inside a range, as MMDetection3D.

        Args:
            box_range: `(x_min, y_min, z_min, x_max, y_max, z_max)` in this system.

        Raises:
            ShapeError: not 6 numbers.
        """
        lo, hi = split_range(box_range, 3, self.tensor)
        centre = self.gravity_center
        return ((centre > lo) & (centre < hi)).all(dim=1)

    # ----------------------------------------------------------------------------- conversion
    def convert_to(self, dst: BoxMode | str, rt_mat: RtMat = None, correct_yaw: bool = True) -> Boxes3D:
        """These boxes in system `dst`, as a new object of `dst`'s class.

        Args:
            dst: the target system (`BoxMode`, `"lidar"`, `"camera"`/`"cam"`, `"depth"`).
            rt_mat: 3x3, 3x4 or 4x4 matrix taking this system's coordinates to `dst`'s (e.g.
                `R0_rect @ Tr_velo_to_cam` for KITTI LiDAR -> camera); None for the default
                axis permutation.
            correct_yaw: turn the headings by `rt_mat`'s rotation (pc3d's default); False reads
                the yaw through the default permutation only (MMDetection3D's default).

        Returns:
            The converted boxes (see `convert_boxes`).
        """
        dst = BoxMode.parse(dst)
        tensor = convert_box_tensor(
            self.tensor, self.mode, dst, rt_mat, with_yaw=self.with_yaw, correct_yaw=correct_yaw
        )
        return box_class(dst)._wrap(tensor, self.with_yaw)

    # ------------------------------------------------------------------------ container API
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_boxes={len(self)}, box_dim={self.box_dim}, with_yaw={self.with_yaw}, "
            f"device={self.device},\n{self.tensor})"
        )

    @classmethod
    def cat(cls, boxes_list: Sequence[Boxes3D]) -> Boxes3D:
        """Concatenate boxes of one class and width into new boxes (never shares memory).

        Args:
            boxes_list: boxes of one class and width; `with_yaw` of the result is True only if
                every part has yaw.

        Returns:
            The concatenation; `LiDARBoxes3D.cat([])` gives empty `LiDARBoxes3D`.

        Raises:
            FormatError: mixed classes, or `Boxes3D.cat([])` (it cannot know the system).
            ShapeError: mixed widths.
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


def box_class(mode: BoxMode | str) -> type[Boxes3D]:
    """The box class of `mode` (`"lidar"` -> `LiDARBoxes3D`, ...).

    Args:
        mode: a `BoxMode` or any spelling `BoxMode.parse` accepts.

    Raises:
        FormatError: an unknown mode.
    """
    if len(_BOX_CLASSES) < len(BoxMode):
        # The concrete classes register themselves when their modules are first imported.
        from pc3d.structures import cam_box3d, depth_box3d, lidar_box3d  # noqa: F401
    return _BOX_CLASSES[BoxMode.parse(mode)]
