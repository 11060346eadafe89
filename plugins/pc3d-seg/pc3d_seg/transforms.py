"""Augmentations of labelled point clouds: points and their labels always change together.

Each transform is a callable ``sample -> sample`` on the seg data sets' samples
(``{"points": Tensor[N, C], "labels": Long[N], ...}``, x, y, z first). Random draws come from
torch's default generator, which the engine seeds from ``(seed, epoch, index)`` for every sample,
so augmentations are reproducible and survive a resume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pc3d.errors import FormatError

__all__ = ["SegCrop", "SegFlip", "SegJitter", "SegPointSample", "SegRotateZ", "SegScale", "TRANSFORMS"]

Sample = dict[str, Any]


def _pair(values: Sequence[float], what: str) -> tuple[float, float]:
    if len(values) != 2 or float(values[0]) > float(values[1]):
        raise FormatError(f"{what} must be a (low, high) pair with low <= high, got {list(values)!r}")
    return float(values[0]), float(values[1])


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _select(sample: Sample, index: Tensor) -> Sample:
    sample["points"], sample["labels"] = sample["points"][index], sample["labels"][index]
    return sample


class SegRotateZ:
    """Rotate the cloud about the z axis (up) by a uniform angle.

    Args:
        angle_range: ``(low, high)`` radians.
    """

    def __init__(self, angle_range: Sequence[float] = (-math.pi, math.pi)) -> None:
        self.angle_range = _pair(angle_range, "SegRotateZ.angle_range")

    def __call__(self, sample: Sample) -> Sample:
        angle = _uniform(*self.angle_range)
        c, s = math.cos(angle), math.sin(angle)
        points = sample["points"].clone()
        x, y = points[:, 0].clone(), points[:, 1].clone()
        points[:, 0], points[:, 1] = c * x - s * y, s * x + c * y
        sample["points"] = points
        return sample


class SegScale:
    """Scale x, y, z by one uniform factor.

    Args:
        scale_range: ``(low, high)``, positive.
    """

    def __init__(self, scale_range: Sequence[float] = (0.95, 1.05)) -> None:
        self.scale_range = _pair(scale_range, "SegScale.scale_range")
        if self.scale_range[0] <= 0:
            raise FormatError(f"SegScale.scale_range must be positive, got {list(scale_range)}")

    def __call__(self, sample: Sample) -> Sample:
        points = sample["points"].clone()
        points[:, :3] *= _uniform(*self.scale_range)
        sample["points"] = points
        return sample


class SegFlip:
    """Mirror the cloud: negate y with probability ``y_ratio`` and x with probability ``x_ratio``.

    Args:
        y_ratio: probability of ``y -> -y`` (left and right swap).
        x_ratio: probability of ``x -> -x`` (front and back swap).
    """

    def __init__(self, y_ratio: float = 0.5, x_ratio: float = 0.0) -> None:
        for name, value in (("y_ratio", y_ratio), ("x_ratio", x_ratio)):
            if not 0.0 <= float(value) <= 1.0:
                raise FormatError(f"SegFlip.{name} must be in [0, 1], got {value!r}")
        self.ratios = (float(x_ratio), float(y_ratio))

    def __call__(self, sample: Sample) -> Sample:
        draws = torch.rand(2)
        points = sample["points"]
        for axis, ratio in enumerate(self.ratios):
            if ratio > 0 and float(draws[axis]) < ratio:
                points = points.clone()
                points[:, axis] = -points[:, axis]
        sample["points"] = points
        return sample


class SegJitter:
    """Add Gaussian noise to x, y, z of every point, clipped.

    Args:
        std: standard deviation (metres).
        clip: noise is clipped to ``[-clip, clip]``.
    """

    def __init__(self, std: float = 0.01, clip: float = 0.05) -> None:
        if std < 0 or clip < 0:
            raise FormatError(f"SegJitter: std and clip must be non-negative, got {std}, {clip}")
        self.std, self.clip = float(std), float(clip)

    def __call__(self, sample: Sample) -> Sample:
        points = sample["points"].clone()
        points[:, :3] += (
            (torch.randn(len(points), 3) * self.std).clamp_(-self.clip, self.clip).to(points.dtype)
        )
        sample["points"] = points
        return sample


class SegPointSample:
    """Keep exactly ``num_points`` points: a random subset, or every point plus random repeats.

    Args:
        num_points: the number of points kept.
    """

    def __init__(self, num_points: int) -> None:
        if num_points < 1:
            raise FormatError(f"SegPointSample.num_points must be at least 1, got {num_points}")
        self.num_points = int(num_points)

    def __call__(self, sample: Sample) -> Sample:
        count = len(sample["points"])
        if count == 0:
            return sample
        if count >= self.num_points:
            index = torch.randperm(count)[: self.num_points]
        else:
            index = torch.cat([torch.randperm(count), torch.randint(count, (self.num_points - count,))])
        return _select(sample, index)


class SegCrop:
    """Indoor patch crop: the points within a ``size`` x ``size`` square (x, y) around a random
    point, re-centred on it (x, y; z kept), optionally resampled to ``num_points``.

    MMDetection3D's ``IndoorPatchPointSample`` idea: train on room-sized patches of large scenes.

    Args:
        size: side of the square (metres).
        num_points: points per crop (None: as many as fall inside).
        recenter: shift the crop so its centre is at x = y = 0.
    """

    def __init__(self, size: float = 1.5, num_points: int | None = None, recenter: bool = True) -> None:
        if size <= 0:
            raise FormatError(f"SegCrop.size must be positive, got {size}")
        self.size, self.recenter = float(size), bool(recenter)
        self.sample = SegPointSample(num_points) if num_points is not None else None

    def __call__(self, sample: Sample) -> Sample:
        points = sample["points"]
        if len(points) == 0:
            return sample
        centre = points[int(torch.randint(len(points), ()))][:2]
        inside = ((points[:, :2] - centre).abs() <= self.size / 2).all(dim=1)
        sample = _select(sample, inside.nonzero()[:, 0])
        if self.recenter:
            shifted = sample["points"].clone()
            shifted[:, :2] -= centre
            sample["points"] = shifted
        return self.sample(sample) if self.sample is not None else sample


TRANSFORMS = (SegRotateZ, SegScale, SegFlip, SegJitter, SegPointSample, SegCrop)
