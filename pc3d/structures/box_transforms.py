"""In-place geometric operations of `Boxes3D`: rotate, flip, translate, scale, limit_yaw, plus
`enlarged_box`, which returns new boxes.

They are MMDetection3D's operations with its signatures and return values (`rotate` returns
`(points, R_t)` when points are given, `flip` returns the points). Points passed along (a
`BasePoints` of the same system, a `Tensor` or an `ndarray` `[M, 3+C]`) are moved in place with
the same matrix, so a scene stays consistent through augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.angles import limit_period
from pc3d.structures.base_points import BasePoints, check_flip_direction
from pc3d.structures.box_mode import BoxMode
from pc3d.structures.utils import as_angle_or_rotation, as_float_tensor, rotation_matrix_t, translation_vector
from pc3d.structures.utils import scale_factor as positive_scale

PointsT = TypeVar("PointsT", Tensor, np.ndarray, BasePoints)


class BoxTransformsMixin:
    """The geometric operations of `Boxes3D` (see the module docstring)."""

    tensor: Tensor
    with_yaw: bool
    mode: ClassVar[BoxMode]
    yaw_axis: ClassVar[int]
    up_sign: ClassVar[float]
    bev_axes: ClassVar[tuple[int, int]]
    flip_axes: ClassVar[dict[str, int]]

    def _check_points_mode(self, points: BasePoints) -> None:
        if points.mode is not self.mode:
            raise FormatError(
                f"points are {type(points).__name__} but boxes are {type(self).__name__}; "
                f"convert the points with points.convert_to({self.mode.value!r}, rt_mat) first"
            )

    def _has_velocity(self) -> bool:
        return self.tensor.shape[1] >= 9

    def _rotation(self, angle: float | Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
        """`(theta Tensor[1], R_t Tensor[3, 3])` of an angle or a transposed rotation matrix."""
        rot = as_angle_or_rotation(angle, self.tensor.device, self.tensor.dtype, "rotation angle")
        if rot.numel() == 1:
            theta = rot.reshape(1)
            return theta, rotation_matrix_t(theta, self.yaw_axis)[0]
        # The angle of a matrix about the yaw axis, read as MMDetection3D does.
        sin = rot[0, 1] if self.yaw_axis == 2 else rot[2, 0]
        return torch.atan2(sin, rot[0, 0]).reshape(1), rot

    def rotate(
        self, angle: float | Tensor | np.ndarray, points: PointsT | None = None
    ) -> tuple[PointsT, Tensor | np.ndarray] | None:
        """Rotate the boxes (and `points`, if given) in place about the vertical axis.

        Args:
            angle: radians, right-handed about the system's yaw axis, so that the yaw grows by
                `angle` in every system (LiDAR/Depth: counter-clockwise seen from above; Camera,
                whose y points down: clockwise seen from above). Or a transposed rotation
                matrix `R_t` (`[3, 3]`, applied as `xyz @ R_t`) about that axis.
            points: `BasePoints` of the same system, or a `Tensor`/`ndarray` `[M, 3+C]`,
                rotated in place with the same matrix.

        Returns:
            `(points, R_t)` when `points` is given (`R_t` a numpy array for numpy points, as in
            MMDetection3D), else None.

        Raises:
            ShapeError: `angle` neither a number nor a 3x3 matrix.
            FormatError: a NaN or infinite angle, or points of another system or of an unknown kind.
        """
        theta, rot_t = self._rotation(angle)
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
        if self._has_velocity():
            self.tensor[:, 7:9] = self.tensor[:, 7:9] @ rot_t[[a, b]][:, [a, b]]
        if points is None:
            return None
        if isinstance(points, BasePoints):
            self._check_points_mode(points)
            points.rotate(rot_t)
        elif isinstance(points, Tensor):
            points[:, :3] = points[:, :3] @ rot_t.to(points.device, points.dtype)
        elif isinstance(points, np.ndarray):
            rot_np = rot_t.detach().cpu().numpy().astype(points.dtype)
            points[:, :3] = points[:, :3] @ rot_np
            return points, rot_np
        else:
            raise FormatError(
                f"points must be BasePoints, a Tensor or an ndarray, got {type(points).__name__}"
            )
        return points, rot_t

    def flip(self, bev_direction: str = "horizontal", points: PointsT | None = None) -> PointsT | None:
        """Mirror the boxes (and `points`) in place in the BEV plane.

        Args:
            bev_direction: `"horizontal"` or `"vertical"`; the negated axis is
                `flip_axes[bev_direction]` (LiDAR: y | x, Camera: x | z, Depth: x | y).
                Negating x turns the yaw into `pi - yaw`, the other BEV axis into `-yaw`.
            points: points to mirror with the boxes, as in `rotate`.

        Returns:
            `points` when given, else None.
        """
        check_flip_direction(bev_direction)
        axis = self.flip_axes[bev_direction]
        self.tensor[:, axis] = -self.tensor[:, axis]
        if self.with_yaw:
            self.tensor[:, 6] = (math.pi - self.tensor[:, 6]) if axis == 0 else -self.tensor[:, 6]
        if self._has_velocity():
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
            raise FormatError(
                f"points must be BasePoints, a Tensor or an ndarray, got {type(points).__name__}"
            )
        return points

    def translate(self, trans_vector: Sequence[float] | Tensor | np.ndarray) -> None:
        """Move the boxes in place.

        Args:
            trans_vector: `[3]` (or `[1, 3]`), or one offset per box, `[N, 3]`.

        Raises:
            ShapeError: any other shape.
            FormatError: a NaN or infinite offset.
        """
        self.tensor[:, :3] += translation_vector(trans_vector, self.tensor.shape[0], self.tensor.device)

    def scale(self, scale_factor: float) -> None:
        """Scale centres, sizes (and velocity) in place, about the origin.

        Args:
            scale_factor: a positive finite factor.

        Raises:
            FormatError: a factor that is not positive and finite.
        """
        factor = positive_scale(scale_factor)
        self.tensor[:, :6] *= factor
        if self._has_velocity():
            self.tensor[:, 7:9] *= factor

    def limit_yaw(self, offset: float = 0.5, period: float = math.pi) -> None:
        """Wrap the yaw into `[-offset * period, (1 - offset) * period)` in place.

        The default period pi (MMDetection3D's) treats a heading and its reverse as one box
        orientation: yaw 2.0 becomes 2.0 - pi. Pass `period=2 * math.pi` to keep the heading.

        Args:
            offset: where the range starts, as a fraction of the period below 0.
            period: the period in radians.
        """
        self.tensor[:, 6] = limit_period(self.tensor[:, 6], offset, period)

    def enlarged_box(self, extra_width: float | Tensor) -> Self:
        """New boxes grown by `extra_width` on every side (sizes + 2 * extra_width).

        The bottom face moves down by `extra_width` along the vertical axis (Camera: +y), so the
        enlarged box keeps its gravity centre.

        Args:
            extra_width: metres, one number or one per box (`Tensor[N]` or `Tensor[N, 1]`).
        """
        extra = as_float_tensor(extra_width, "extra_width", device=self.tensor.device)
        if extra.numel() != 1:
            if extra.numel() != self.tensor.shape[0]:
                raise ShapeError(
                    f"extra_width must be one number or one per box ({self.tensor.shape[0]}), got {tuple(extra.shape)}"
                )
            extra = extra.reshape(-1, 1)
        grown = self.tensor.clone()
        grown[:, 3:6] += extra * 2
        grown[:, self.yaw_axis : self.yaw_axis + 1] -= self.up_sign * extra.reshape(-1, 1)
        return self.new_box(grown)

    if TYPE_CHECKING:

        def new_box(self, data: Tensor | np.ndarray | Sequence[Sequence[float]]) -> Self:
            """Boxes of the same class holding `data` (defined on `Boxes3D`).

            Args:
                data: `[K, box_dim]` boxes.
            """
