"""3D anchors over a bird's-eye-view feature map, laid out as MMDetection3D lays them.

An anchor is a LiDAR box ``x, y, z, x_size, y_size, z_size, yaw`` with ``z`` the bottom centre,
the convention of :class:`pc3d.structures.LiDARBoxes3D`. Each class (or size) has an anchor
*range* ``(x_min, y_min, z_min, x_max, y_max, z_max)``: the anchor centres of a feature map of
``H x W`` cells tile that range, one centre per cell, at the fixed height ``z_min``; every centre
carries each size with each rotation.

Layout (MMDetection3D's ``AlignedAnchor3DRangeGenerator``, so that its checkpoints' head channels
line up): per location the ``A = num_sizes * num_rotations`` anchors are ordered size-major
(``[(s0, r0), (s0, r1), (s1, r0), ...]``), and :meth:`AnchorGenerator3D.grid_anchors` returns
per level ``Tensor[H * W * A, 7]`` location-major (row ``y``, then column ``x``, then anchor) --
the order of a head output ``Tensor[B, A * C, H, W]`` after
``permute(0, 2, 3, 1).reshape(B, H * W * A, C)``.

Levels: the generator has the interface of the 2D one
(:class:`pc3d.nn.anchors.AnchorGeneratorLike`): ``grid_anchors`` takes one ``(H, W)`` per level
and returns one tensor per level. As in MMDetection3D's range generators, every level tiles the
same ranges with the same sizes and rotations; level ``l`` multiplies the sizes by
``scales[l]`` (one level with factor 1 by default).

Centres: with ``align_corner=False`` (the default, MMDetection3D's) the centres sit in the middle
of the ``W`` (``H``) equal cells that split ``[x_min, x_max]`` (``[y_min, y_max]``); with
``align_corner=True`` they sit on the cells' lower corners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.errors import FormatError

__all__ = ["AnchorGenerator3D"]


def _rows(values: Sequence[Sequence[float]], width: int, what: str) -> list[list[float]]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise FormatError(f"{what} must be a non-empty list of {width}-number lists, got {values!r}")
    rows = []
    for i, row in enumerate(values):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != width:
            raise FormatError(f"{what}[{i}] must have {width} numbers, got {row!r}")
        floats = [float(v) for v in row]
        if not all(math.isfinite(v) for v in floats):
            raise FormatError(f"{what}[{i}] must be finite, got {row!r}")
        rows.append(floats)
    return rows


class AnchorGenerator3D:
    """Anchors for every cell of a BEV feature map (see the module docstring).

    Args:
        ranges: one ``[x_min, y_min, z_min, x_max, y_max, z_max]`` per size (or a single range
            shared by all sizes). ``z_min`` is the anchors' bottom height; ``z_max`` equals it for
            the usual one-height anchors (otherwise the centre height is halfway, or
            ``z_min`` with ``align_corner``).
        sizes: ``[x_size, y_size, z_size]`` (length, width, height in metres) of each anchor size,
            typically one per class.
        rotations: yaw angles every size is placed with.
        align_corner: put the centres on the cells' corners instead of their middles.
        scales: one size factor per feature level (MMDetection3D's ``scales``); their number is
            the number of levels. Default: one level, factor ``scale``.
        scale: size factor of the single level when ``scales`` is not given.

    Attributes:
        num_levels: number of levels, ``len(scales)``.
        num_base_anchors: ``list[int]``, anchors per location on each level,
            ``len(sizes) * len(rotations)`` on every level.
    """

    def __init__(
        self,
        ranges: Sequence[Sequence[float]],
        sizes: Sequence[Sequence[float]],
        rotations: Sequence[float] = (0.0, math.pi / 2),
        align_corner: bool = False,
        scale: float = 1.0,
        scales: Sequence[float] | None = None,
    ) -> None:
        self.sizes = _rows(sizes, 3, "sizes")
        self.ranges = _rows(ranges, 6, "ranges")
        if len(self.ranges) not in (1, len(self.sizes)):
            raise FormatError(
                f"ranges: give one range, or one per size ({len(self.sizes)}), got {len(self.ranges)}"
            )
        for i, (lo, hi) in enumerate((r[:3], r[3:]) for r in self.ranges):
            if any(b < a for a, b in zip(lo, hi)):
                raise FormatError(f"ranges[{i}] = {self.ranges[i]}: each max must be >= its min")
        if any(v <= 0 for size in self.sizes for v in size):
            raise FormatError(f"sizes must be positive, got {self.sizes}")
        if isinstance(rotations, (str, bytes)) or len(rotations) == 0:
            raise FormatError(f"rotations must be a non-empty list of angles, got {rotations!r}")
        self.rotations = [float(r) for r in rotations]
        one_level = scales is None
        if scales is None:
            scales = [scale]
        elif scale != 1.0:
            raise FormatError(
                f"give scales (one per level) or scale (one level), not both; got {scale!r} and {scales!r}"
            )
        if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or len(scales) == 0:
            raise FormatError(
                f"scales must be a non-empty list of positive numbers (one per level), got {scales!r}"
            )
        for i, value in enumerate(scales):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                what = "scale" if one_level else f"scales[{i}]"
                raise FormatError(f"{what} must be a positive number, got {value!r}")
        self.scales = [float(v) for v in scales]
        self.align_corner = bool(align_corner)

    @property
    def num_levels(self) -> int:
        return len(self.scales)

    @property
    def num_base_anchors(self) -> list[int]:
        return [len(self.sizes) * len(self.rotations)] * self.num_levels

    def grid_anchors(
        self, featmap_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Anchors of every level: ``featmap_sizes[l] = (H_l, W_l)`` -> ``Tensor[H_l * W_l * A, 7]``
        (float32), one tensor per level.

        Raises:
            FormatError: not one ``(H, W)`` with positive sides per level.
        """
        if isinstance(featmap_sizes, (str, bytes)) or not isinstance(featmap_sizes, Sequence):
            raise FormatError(f"featmap_sizes must be a list of (H, W), one per level, got {featmap_sizes!r}")
        if len(featmap_sizes) and not all(isinstance(size, Sequence) for size in featmap_sizes):
            raise FormatError(
                f"featmap_sizes must be a list of (H, W), one per level, got {tuple(featmap_sizes)!r} "
                f"(one map of that size is [{tuple(featmap_sizes)!r}])"
            )
        if len(featmap_sizes) != self.num_levels:
            raise FormatError(
                f"got {len(featmap_sizes)} feature map sizes for {self.num_levels} anchor levels"
            )
        return [
            self._single_level(size, i, scale, device)
            for i, (size, scale) in enumerate(zip(featmap_sizes, self.scales))
        ]

    def _single_level(
        self, featmap_size: Sequence[int], level: int, scale: float, device: torch.device | str
    ) -> Tensor:
        if len(featmap_size) != 2 or any(int(v) <= 0 for v in featmap_size):
            raise FormatError(
                f"featmap_sizes[{level}] must be (H, W) with positive sides, got {tuple(featmap_size)!r}"
            )
        height, width = int(featmap_size[0]), int(featmap_size[1])
        ranges = self.ranges if len(self.ranges) == len(self.sizes) else self.ranges * len(self.sizes)
        per_size = [
            self._single_range(height, width, r, s, scale, device) for r, s in zip(ranges, self.sizes)
        ]
        # [H, W, num_sizes, num_rotations, 7] -> location-major, size-major within a location.
        return torch.stack(per_size, dim=2).reshape(-1, 7)

    def _centres(self, bounds: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
        """Anchor bottom height ``[1]``, row centres ``[H]`` and column centres ``[W]`` of a range
        (float32, as MMDetection3D computes them, so its checkpoints' boxes match to the bit)."""
        zs = torch.linspace(bounds[2], bounds[5], 2, device=bounds.device)
        ys = torch.linspace(bounds[1], bounds[4], height + 1, device=bounds.device)
        xs = torch.linspace(bounds[0], bounds[3], width + 1, device=bounds.device)
        if not self.align_corner:
            zs = zs + (zs[1] - zs[0]) / 2
            ys = ys + (ys[1] - ys[0]) / 2
            xs = xs + (xs[1] - xs[0]) / 2
        return zs[:1], ys[:height], xs[:width]

    def _single_range(
        self,
        height: int,
        width: int,
        anchor_range: list[float],
        size: list[float],
        scale: float,
        device: torch.device | str,
    ) -> Tensor:
        bounds = torch.tensor(anchor_range, dtype=torch.float32, device=device)
        zs, ys, xs = self._centres(bounds, height, width)
        rot = torch.tensor(self.rotations, dtype=torch.float32, device=device)
        yy, xx, rr = torch.meshgrid(ys, xs, rot, indexing="ij")  # [H, W, R]
        zz = zs[0].expand_as(xx)
        dims = (torch.tensor(size, dtype=torch.float32, device=device) * scale).expand(*xx.shape, 3)
        return torch.cat([xx[..., None], yy[..., None], zz[..., None], dims, rr[..., None]], dim=-1)

    def __repr__(self) -> str:
        return (
            f"AnchorGenerator3D(ranges={self.ranges}, sizes={self.sizes}, rotations={self.rotations}, "
            f"align_corner={self.align_corner}, scales={self.scales})"
        )
