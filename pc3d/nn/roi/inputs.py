"""The argument checks RoI Align and RoI Pool share, and the RoIs scaled to the feature map (see
:mod:`pc3d.nn.roi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError

__all__ = ["Prepared", "output_pair", "prepare"]


def output_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """The output size `(ph, pw)` from a side or a pair.

    Args:
        size: `ph` (square output) or `(ph, pw)`.

    Returns:
        `(ph, pw)` as ints.

    Raises:
        FormatError: `size` is neither, or not positive.
    """
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise FormatError(f"output_size must be an int or an (h, w) pair, got {size!r}")
    if min(pair) < 1:
        raise FormatError(f"output_size must be positive, got {size!r}")
    return pair


def _check_inputs(input: Tensor, rois: Tensor | Sequence[Tensor]) -> Tensor:
    """Validate the map and return RoIs as `Tensor[K, 5]` on its device and dtype."""
    if not isinstance(input, Tensor) or input.dim() != 4:
        raise ShapeError(
            f"input must be a feature map (B, C, H, W), got {tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}"
        )
    if not input.is_floating_point():
        raise FormatError(f"input must be a floating-point map, got {input.dtype}")
    if not isinstance(rois, Tensor):
        parts = []
        for i, boxes in enumerate(rois):
            if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ShapeError(f"rois[{i}] must be (K_i, 4) boxes x1, y1, x2, y2")
            index = torch.full((boxes.shape[0], 1), float(i), dtype=input.dtype, device=input.device)
            parts.append(torch.cat([index, boxes.to(device=input.device, dtype=input.dtype)], dim=1))
        rois = torch.cat(parts) if parts else input.new_zeros((0, 5))
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ShapeError(f"rois must be (K, 5) rows (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    rois = rois.to(device=input.device, dtype=input.dtype)
    if rois.shape[0] > 0:
        finite = torch.isfinite(rois).all(dim=1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0, 0])
            raise FormatError(f"rois row {row}: {rois[row].tolist()} holds NaN/inf")
        batch = rois[:, 0]
        bad = (batch < 0) | (batch >= input.shape[0]) | (batch != batch.floor())
        if bool(bad.any()):
            row = int(torch.nonzero(bad)[0, 0])
            raise FormatError(
                f"rois row {row}: batch index {rois[row, 0].item()} is not an image of the batch (0..{input.shape[0] - 1})"
            )
    return rois


def _channel_last(input: Tensor) -> Tensor:
    """`Tensor[B, C, H, W]` -> `Tensor[B * H * W, C]` (row `(b * H + y) * W + x`)."""
    return input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])


class Prepared(NamedTuple):
    """What `roi_align` and `roi_pool` compute from their common arguments."""

    boxes: Tensor  # Tensor[K, 4] RoI corners scaled to map coordinates, detached
    base: Tensor  # LongTensor[K] first row in `table` of each RoI's image
    table: Tensor  # Tensor[B * H * W, C], see `_channel_last`
    ph: int
    pw: int


def prepare(
    input: Tensor, rois: Tensor | Sequence[Tensor], output_size: int | Sequence[int], spatial_scale: float
) -> Prepared | Tensor:
    """Check the arguments `roi_align` and `roi_pool` share and scale the RoIs to the map.

    Args:
        input: the feature map.
        rois: the RoIs, in either form the public functions take.
        output_size: the output's side or `(ph, pw)`.
        spatial_scale: the map's scale (1 / stride).

    Returns:
        The prepared RoIs, or the final all-zero `Tensor[K, C, ph, pw]` when there are no RoIs or
        the map is empty.

    Raises:
        ShapeError: `input` or `rois` has the wrong shape.
        FormatError: a bad `output_size`, a non-float map, a NaN/inf RoI or a bad batch index.
    """
    rois = _check_inputs(input, rois)
    ph, pw = output_pair(output_size)
    _, channels, height, width = input.shape
    num = rois.shape[0]
    if num == 0 or height == 0 or width == 0:
        return input.new_zeros((num, channels, ph, pw))
    # The box geometry itself is not differentiated (as in the reference kernels).
    boxes = rois[:, 1:].detach() * float(spatial_scale)
    base = rois[:, 0].long() * (height * width)
    return Prepared(boxes, base, _channel_last(input), ph, pw)
