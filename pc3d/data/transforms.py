"""Augmentations of LiDAR frames: points and boxes always move together.

Each transform is a callable ``Sample3D -> Sample3D`` that may change the sample in place. Random
draws come from torch's default generator, which the engine seeds from ``(seed, epoch, index)``
for every sample, so a run's augmentations are reproducible and survive a resume. Names and
defaults follow MMDetection3D's (``GlobalRotScaleTrans``, ``RandomFlip3D``, ``ObjectNoise``,
``PointsRangeFilter``, ``ObjectRangeFilter``, ``PointShuffle``; ground-truth sampling is
:class:`pc3d.data.gt_database.ObjectSample`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from pc3d.data.sample import Sample3D
from pc3d.errors import FormatError
from pc3d.ops import boxes_overlap_bev

__all__ = [
    "Compose",
    "GlobalRotScaleTrans",
    "ObjectNoise",
    "ObjectRangeFilter",
    "PointShuffle",
    "PointsRangeFilter",
    "RandomFlip3D",
]

Transform = Callable[[Sample3D], Sample3D]


def _uniform(low: float, high: float, size: int = 1) -> Tensor:
    return torch.rand(size, dtype=torch.float64) * (high - low) + low


def _pair(values: Sequence[float], what: str) -> tuple[float, float]:
    if len(values) != 2 or float(values[0]) > float(values[1]):
        raise FormatError(f"{what} must be a (low, high) pair with low <= high, got {list(values)!r}")
    return float(values[0]), float(values[1])


def _range6(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if len(out) != 6 or any(out[i] >= out[i + 3] for i in range(3)):
        raise FormatError(
            f"{what} must be [x_min, y_min, z_min, x_max, y_max, z_max] with min < max, got {list(values)!r}"
        )
    return out


class Compose:
    """Apply transforms in order.

    Args:
        transforms: callables ``Sample3D -> Sample3D``.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample3D) -> Sample3D:
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class PointsRangeFilter:
    """Keep the points inside ``point_cloud_range`` (min inclusive, max exclusive).

    Args:
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]``.
    """

    def __init__(self, point_cloud_range: Sequence[float]) -> None:
        self.point_cloud_range = _range6(point_cloud_range, "PointsRangeFilter.point_cloud_range")

    def __call__(self, sample: Sample3D) -> Sample3D:
        sample.points = sample.points[sample.points.in_range_3d(self.point_cloud_range)]
        return sample


class ObjectRangeFilter:
    """Keep the boxes whose bird's-eye centre lies inside the range, and wrap their yaw into
    ``[-π, π)``.

    Args:
        point_cloud_range: ``[x_min, y_min, z_min, x_max, y_max, z_max]`` (z is not used).
    """

    def __init__(self, point_cloud_range: Sequence[float]) -> None:
        rng = _range6(point_cloud_range, "ObjectRangeFilter.point_cloud_range")
        self.bev_range = [rng[0], rng[1], rng[3], rng[4]]

    def __call__(self, sample: Sample3D) -> Sample3D:
        sample.keep_boxes(sample.gt_boxes.in_range_bev(self.bev_range))
        sample.gt_boxes.limit_yaw(offset=0.5, period=2 * math.pi)
        return sample


class GlobalRotScaleTrans:
    """Rotate the whole frame about the sensor's vertical axis, scale it, then shift it.

    Args:
        rot_range: yaw range in radians (uniform).
        scale_ratio_range: scale factor range (uniform).
        translation_std: per-axis standard deviation of a Gaussian shift (metres).
    """

    def __init__(
        self,
        rot_range: Sequence[float] = (-math.pi / 4, math.pi / 4),
        scale_ratio_range: Sequence[float] = (0.95, 1.05),
        translation_std: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> None:
        self.rot_range = _pair(rot_range, "GlobalRotScaleTrans.rot_range")
        self.scale_ratio_range = _pair(scale_ratio_range, "GlobalRotScaleTrans.scale_ratio_range")
        if self.scale_ratio_range[0] <= 0:
            raise FormatError(
                f"GlobalRotScaleTrans.scale_ratio_range must be positive, got {list(scale_ratio_range)}"
            )
        if len(translation_std) != 3 or any(float(s) < 0 for s in translation_std):
            raise FormatError(
                f"GlobalRotScaleTrans.translation_std needs 3 non-negative numbers, got {list(translation_std)}"
            )
        self.translation_std = [float(s) for s in translation_std]

    def __call__(self, sample: Sample3D) -> Sample3D:
        angle = float(_uniform(*self.rot_range))
        scale = float(_uniform(*self.scale_ratio_range))
        shift = torch.randn(3, dtype=torch.float64) * torch.tensor(self.translation_std, dtype=torch.float64)
        sample.gt_boxes.rotate(angle, sample.points)
        sample.gt_boxes.scale(scale)
        sample.points.scale(scale)
        sample.gt_boxes.translate(shift.float())
        sample.points.translate(shift.float())
        return sample


class RandomFlip3D:
    """Mirror the frame across the LiDAR x axis (``y -> -y``) and/or the y axis (``x -> -x``).

    Args:
        flip_ratio_bev_horizontal: probability of negating y (left and right swap).
        flip_ratio_bev_vertical: probability of negating x (front and back swap).
    """

    def __init__(self, flip_ratio_bev_horizontal: float = 0.5, flip_ratio_bev_vertical: float = 0.0) -> None:
        for name, value in (("horizontal", flip_ratio_bev_horizontal), ("vertical", flip_ratio_bev_vertical)):
            if not 0.0 <= float(value) <= 1.0:
                raise FormatError(f"RandomFlip3D.flip_ratio_bev_{name} must be in [0, 1], got {value!r}")
        self.ratios = {
            "horizontal": float(flip_ratio_bev_horizontal),
            "vertical": float(flip_ratio_bev_vertical),
        }

    def __call__(self, sample: Sample3D) -> Sample3D:
        for direction, ratio in self.ratios.items():
            if ratio > 0 and float(torch.rand(1)) < ratio:
                sample.gt_boxes.flip(direction, sample.points)
        return sample


class PointShuffle:
    """Shuffle the order of the points (voxels keep the first points they receive)."""

    def __call__(self, sample: Sample3D) -> Sample3D:
        sample.points = sample.points[torch.randperm(len(sample.points))]
        return sample


class ObjectNoise:
    """Move each box (with the points inside it) by a random shift and turn; a move that would
    make it overlap another box (bird's-eye view) is not made.

    Args:
        translation_std: per-axis standard deviation of the shift (metres).
        rot_range: turn range about the box's own vertical axis (radians).
        num_try: candidate moves drawn per box; the first that collides with nothing is used.
    """

    def __init__(
        self,
        translation_std: Sequence[float] = (0.25, 0.25, 0.25),
        rot_range: Sequence[float] = (-0.15707963267, 0.15707963267),
        num_try: int = 20,
    ) -> None:
        if len(translation_std) != 3 or any(float(s) < 0 for s in translation_std):
            raise FormatError(
                f"ObjectNoise.translation_std needs 3 non-negative numbers, got {list(translation_std)}"
            )
        self.translation_std = torch.tensor([float(s) for s in translation_std])
        self.rot_range = _pair(rot_range, "ObjectNoise.rot_range")
        if int(num_try) < 1:
            raise FormatError(f"ObjectNoise.num_try must be at least 1, got {num_try}")
        self.num_try = int(num_try)

    def __call__(self, sample: Sample3D) -> Sample3D:
        boxes = sample.gt_boxes.tensor
        count = boxes.shape[0]
        if count == 0:
            return sample
        shifts = torch.randn(count, self.num_try, 3) * self.translation_std
        turns = _uniform(*self.rot_range, size=count * self.num_try).float().reshape(count, self.num_try)
        moved = boxes[:, None, :7].repeat(1, self.num_try, 1)
        moved[..., :3] += shifts
        moved[..., 6] += turns
        # A candidate move is free when its box meets no other (unmoved) box.
        overlaps = boxes_overlap_bev(moved.reshape(-1, 7), boxes[:, :7]).reshape(count, self.num_try, count)
        overlaps[torch.arange(count), :, torch.arange(count)] = False
        free = ~overlaps.any(dim=2)
        chosen = free.float().argmax(dim=1)
        movable = free.any(dim=1)
        index = torch.arange(count)
        shift = torch.where(movable[:, None], shifts[index, chosen], torch.zeros(3))
        turn = torch.where(movable, turns[index, chosen], torch.zeros(()))
        shift, turn = self._undo_collisions(boxes[:, :7], shift, turn)
        owner = sample.gt_boxes.points_in_boxes_part(sample.points)  # [P], -1 outside every box
        self._move_points(sample, owner, boxes[:, :3].clone(), shift, turn)
        boxes[:, :3] += shift
        boxes[:, 6] += turn
        return sample

    @staticmethod
    def _undo_collisions(boxes: Tensor, shift: Tensor, turn: Tensor) -> tuple[Tensor, Tensor]:
        """Moves were checked against the unmoved boxes; two moved boxes may still meet: undo
        the moves of such pairs (unmoved boxes never overlap, so undoing all always works)."""
        for _ in range(3):
            moved = boxes.clone()
            moved[:, :3] += shift
            moved[:, 6] += turn
            overlaps = boxes_overlap_bev(moved, moved)
            overlaps.fill_diagonal_(False)
            clash = overlaps.any(dim=1)
            if not bool(clash.any()):
                return shift, turn
            shift = torch.where(clash[:, None], torch.zeros_like(shift), shift)
            turn = torch.where(clash, torch.zeros_like(turn), turn)
        return torch.zeros_like(shift), torch.zeros_like(turn)

    @staticmethod
    def _move_points(sample: Sample3D, owner: Tensor, centres: Tensor, shift: Tensor, turn: Tensor) -> None:
        inside = owner >= 0
        if not bool(inside.any()):
            return
        who = owner[inside]
        xyz = sample.points.tensor[inside, :3] - centres[who]
        cos, sin = torch.cos(turn[who]), torch.sin(turn[who])
        x = xyz[:, 0] * cos - xyz[:, 1] * sin
        y = xyz[:, 0] * sin + xyz[:, 1] * cos
        sample.points.tensor[inside, :3] = torch.stack([x, y, xyz[:, 2]], dim=1) + centres[who] + shift[who]
