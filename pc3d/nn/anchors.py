"""Anchor boxes for dense detection heads: multi-level, multi-scale, multi-ratio.

Conventions (those of MMDetection 2.x/3.x, so its configs carry over):

- Boxes are `x1, y1, x2, y2` in input-image pixels, width `x2 - x1`.
- Level `l` has stride `s_l` and base size `b_l` (default: the stride). For a ratio `r = h / w`
  and a scale `k`, the anchor has `w = b_l * k / sqrt(r)` and `h = b_l * k * sqrt(r)` (so its
  area is `(b_l * k)^2` whatever the ratio). Base anchors are ordered ratio-major:
  `[(r0, k0), (r0, k1), ..., (r1, k0), ...]`.
- The base anchors are centred at `(center_offset * s_l, center_offset * s_l)`; the anchors of the
  cell in column `j`, row `i` are shifted by `(j * s_l, i * s_l)`. `center_offset=0` puts the centres
  on the cells' top-left corners (MMDetection's default), `0.5` on the cell centres. (MMDetection
  multiplies the offset by the base size instead; the two agree whenever the base size is the
  stride, the default.)
- `grid_anchors` returns per level `Tensor[H * W * A, 4]`, location-major (row, then column, then
  base anchor) -- the order of a head output `Tensor[B, A * C, H, W]` after
  `permute(0, 2, 3, 1).reshape(B, H * W * A, C)`.
- Scales are given either directly (`scales`) or RetinaNet-style as
  `octave_base_scale * 2 ** (i / scales_per_octave)` for `i < scales_per_octave`.

`AnchorGeneratorLike` is the interface a head relies on, shared by this 2D generator and the 3D
one (`pc3d.nn.anchors_3d.AnchorGenerator3D`): `num_levels`, `num_base_anchors` (a list, one
count per level) and `grid_anchors(featmap_sizes, device)` (one `(H, W)` per level in, one
`Tensor[H * W * A, D]` per level out, `D = 4` here and 7 in 3D).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from pc3d.errors import FormatError


def _pair(value: int | float | Sequence[int | float], what: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = (float(value), float(value))
    elif isinstance(value, Sequence) and len(value) == 2:
        pair = (float(value[0]), float(value[1]))
    else:
        raise FormatError(f"{what} must be a number or a (w, h) pair, got {value!r}")
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise FormatError(f"{what} must be positive, got {value!r}")
    return pair


def _positive_list(values: Sequence[float], what: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise FormatError(f"{what} must be a non-empty list of positive numbers, got {values!r}")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise FormatError(f"{what} must hold positive finite numbers, got {values!r}")
    return out


@runtime_checkable
class AnchorGeneratorLike(Protocol):
    """What a dense head needs of an anchor generator, 2D or 3D (see the module docstring).

    Satisfied by :class:`AnchorGenerator` and :class:`pc3d.nn.anchors_3d.AnchorGenerator3D`;
    ``isinstance(gen, AnchorGeneratorLike)`` checks that the members exist.
    """

    @property
    def num_levels(self) -> int:
        """Number of feature levels the generator places anchors on."""
        ...

    @property
    def num_base_anchors(self) -> list[int]:
        """Anchors per location (``A``) on each level."""
        ...

    def grid_anchors(
        self, featmap_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """One ``(H_l, W_l)`` per level -> per level ``Tensor[H_l * W_l * A_l, D]``, location-major."""
        ...


class AnchorGenerator:
    """Anchors for every cell of every feature level (see the module docstring).

    Args:
        strides: stride of each level, a number or a `(stride_w, stride_h)` pair.
        ratios: height / width ratios.
        scales: anchor sizes in units of the base size; give either this or the octave pair.
        octave_base_scale: RetinaNet's base scale (e.g. 4).
        scales_per_octave: RetinaNet's scales per octave (e.g. 3).
        base_sizes: base size of each level (default: the level's stride, or its smaller side).
        center_offset: position of the anchor centres within a cell, in [0, 1).

    Attributes:
        num_levels: number of levels.
        num_base_anchors: `list[int]`, anchors per location on each level (`A`).
        base_anchors: `list[Tensor[A, 4]]` (float32, CPU), the anchors of the cell (0, 0).
    """

    def __init__(
        self,
        strides: Sequence[int | float | Sequence[int | float]],
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        scales: Sequence[float] | None = None,
        octave_base_scale: float | None = None,
        scales_per_octave: int | None = None,
        base_sizes: Sequence[int | float | Sequence[int | float]] | None = None,
        center_offset: float = 0.0,
    ) -> None:
        if isinstance(strides, (str, bytes)) or not isinstance(strides, Sequence) or len(strides) == 0:
            raise FormatError(f"strides must be a non-empty list (one per level), got {strides!r}")
        self.strides = [_pair(s, f"strides[{i}]") for i, s in enumerate(strides)]
        if base_sizes is None:
            self.base_sizes = [(min(s), min(s)) for s in self.strides]
        else:
            if len(base_sizes) != len(self.strides):
                raise FormatError(f"base_sizes has {len(base_sizes)} entries for {len(self.strides)} levels")
            self.base_sizes = [_pair(b, f"base_sizes[{i}]") for i, b in enumerate(base_sizes)]
        self.ratios = _positive_list(ratios, "ratios")
        octave = octave_base_scale is not None or scales_per_octave is not None
        if (scales is None) == (not octave):
            raise FormatError(
                "give either scales or (octave_base_scale and scales_per_octave), not both or neither"
            )
        if octave:
            if octave_base_scale is None or scales_per_octave is None or int(scales_per_octave) < 1:
                raise FormatError("octave scales need both octave_base_scale and scales_per_octave >= 1")
            n = int(scales_per_octave)
            self.scales = [float(octave_base_scale) * 2 ** (i / n) for i in range(n)]
        else:
            self.scales = _positive_list(scales, "scales")  # type: ignore[arg-type]
        if not 0.0 <= center_offset < 1.0:
            raise FormatError(f"center_offset must be in [0, 1), got {center_offset!r}")
        self.center_offset = float(center_offset)
        self.base_anchors = [self._base_anchors(b, s) for b, s in zip(self.base_sizes, self.strides)]

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_anchors(self) -> list[int]:
        return [int(a.shape[0]) for a in self.base_anchors]

    def _base_anchors(self, base_size: tuple[float, float], stride: tuple[float, float]) -> Tensor:
        # float64 while building so that e.g. sqrt(2) rounds once, at the end.
        w, h = base_size
        cx, cy = self.center_offset * stride[0], self.center_offset * stride[1]
        h_ratios = torch.tensor(self.ratios, dtype=torch.float64).sqrt()
        w_ratios = 1.0 / h_ratios
        scales = torch.tensor(self.scales, dtype=torch.float64)
        ws = (w * w_ratios[:, None] * scales[None, :]).reshape(-1)
        hs = (h * h_ratios[:, None] * scales[None, :]).reshape(-1)
        return torch.stack([cx - 0.5 * ws, cy - 0.5 * hs, cx + 0.5 * ws, cy + 0.5 * hs], dim=-1).float()

    def _check_sizes(self, featmap_sizes: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
        if len(featmap_sizes) != self.num_levels:
            raise FormatError(
                f"got {len(featmap_sizes)} feature map sizes for {self.num_levels} anchor levels"
            )
        sizes = []
        for i, size in enumerate(featmap_sizes):
            if len(size) != 2 or any(int(v) < 0 for v in size):
                raise FormatError(f"featmap_sizes[{i}] must be (H, W), got {tuple(size)!r}")
            sizes.append((int(size[0]), int(size[1])))
        return sizes

    def grid_anchors(
        self,
        featmap_sizes: Sequence[Sequence[int]],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> list[Tensor]:
        """Anchors of every level: `featmap_sizes[l] = (H_l, W_l)` -> `Tensor[H_l * W_l * A_l, 4]`."""
        out = []
        for (h, w), (sw, sh), base in zip(self._check_sizes(featmap_sizes), self.strides, self.base_anchors):
            shift_x = torch.arange(w, device=device, dtype=dtype) * sw
            shift_y = torch.arange(h, device=device, dtype=dtype) * sh
            yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
            shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)
            out.append((shifts + base.to(device=device, dtype=dtype)[None]).reshape(-1, 4))
        return out

    def valid_flags(
        self,
        featmap_sizes: Sequence[Sequence[int]],
        valid_shape: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Which anchors sit on cells covering the real image of a padded batch.

        `valid_shape = (h, w)` is the image size before padding; a cell in row `i`, column `j` is
        valid when `i < ceil(h / stride_h)` and `j < ceil(w / stride_w)`. Returns per level
        `BoolTensor[H_l * W_l * A_l]` in the order of `grid_anchors`.
        """
        vh, vw = (float(v) for v in valid_shape)
        out = []
        for (h, w), (sw, sh), a in zip(self._check_sizes(featmap_sizes), self.strides, self.num_base_anchors):
            rows = torch.arange(h, device=device) < min(math.ceil(vh / sh), h)
            cols = torch.arange(w, device=device) < min(math.ceil(vw / sw), w)
            cells = rows[:, None] & cols[None, :]
            out.append(cells.reshape(-1, 1).expand(-1, a).reshape(-1))
        return out

    def __repr__(self) -> str:
        return (
            f"AnchorGenerator(strides={self.strides}, ratios={self.ratios}, scales={self.scales}, "
            f"base_sizes={self.base_sizes}, center_offset={self.center_offset})"
        )
