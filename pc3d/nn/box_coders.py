"""Delta box coder: boxes <-> regression targets relative to anchors (R-CNN parameterisation).

For an anchor (or proposal) with centre `(px, py)` and size `(pw, ph)` and a target box with
`(gx, gy, gw, gh)` (all from `x1, y1, x2, y2`, width `x2 - x1`):

    dx = (gx - px) / pw,  dy = (gy - py) / ph,  dw = log(gw / pw),  dh = log(gh / ph)

and the stored deltas are `(d - means) / stds`. Decoding inverts this, clamps `dw, dh` to
`+-|log(wh_ratio_clip)|` (so `exp` cannot overflow: by default a box grows at most 62.5x per side)
and optionally clamps the centre shift to `ctr_clamp` pixels and clips the boxes to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError


class DeltaXYWHBBoxCoder:
    """Encode/decode `x1, y1, x2, y2` boxes as normalised `dx, dy, dw, dh` deltas.

    Args:
        target_means: means subtracted from the raw deltas.
        target_stds: stds dividing the raw deltas (Faster R-CNN's box head uses 0.1, 0.1, 0.2, 0.2).
        wh_ratio_clip: `dw, dh` are clamped to `+-|log(wh_ratio_clip)|` when decoding.
        clip_border: clip decoded boxes to `max_shape` when it is given.
        ctr_clamp: when set, decoded centres move at most this many pixels from the anchor's.
    """

    def __init__(
        self,
        target_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        target_stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        wh_ratio_clip: float = 16 / 1000,
        clip_border: bool = True,
        ctr_clamp: float | None = None,
    ) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise FormatError(
                f"target_means and target_stds need 4 values each, got {target_means!r}, {target_stds!r}"
            )
        if any(float(s) <= 0 for s in target_stds):
            raise FormatError(f"target_stds must be positive, got {target_stds!r}")
        if not 0 < wh_ratio_clip < 1:
            raise FormatError(f"wh_ratio_clip must be in (0, 1), got {wh_ratio_clip!r}")
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.max_ratio = abs(math.log(wh_ratio_clip))
        self.clip_border = clip_border
        self.ctr_clamp = ctr_clamp

    def encode(self, anchors: Tensor, gt_boxes: Tensor) -> Tensor:
        """`Tensor[..., 4]` anchors and matching `Tensor[..., 4]` boxes -> `Tensor[..., 4]` deltas.

        Anchors and boxes must have positive width and height (a zero-size box has no log size).
        """
        if anchors.shape != gt_boxes.shape or anchors.shape[-1:] != (4,):
            raise ShapeError(
                f"encode needs anchors and gt_boxes of one shape (..., 4), got {tuple(anchors.shape)} and {tuple(gt_boxes.shape)}"
            )
        dtype = torch.promote_types(anchors.dtype, gt_boxes.dtype)
        dtype = dtype if dtype.is_floating_point else torch.float32
        anchors, gt_boxes = anchors.to(dtype), gt_boxes.to(dtype)
        pw = anchors[..., 2] - anchors[..., 0]
        ph = anchors[..., 3] - anchors[..., 1]
        px = (anchors[..., 0] + anchors[..., 2]) * 0.5
        py = (anchors[..., 1] + anchors[..., 3]) * 0.5
        gw = gt_boxes[..., 2] - gt_boxes[..., 0]
        gh = gt_boxes[..., 3] - gt_boxes[..., 1]
        gx = (gt_boxes[..., 0] + gt_boxes[..., 2]) * 0.5
        gy = (gt_boxes[..., 1] + gt_boxes[..., 3]) * 0.5
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        means = deltas.new_tensor(self.means)
        stds = deltas.new_tensor(self.stds)
        return (deltas - means) / stds

    def decode(
        self, anchors: Tensor, deltas: Tensor, max_shape: Sequence[int] | Tensor | None = None
    ) -> Tensor:
        """Apply deltas to anchors.

        Args:
            anchors: `Tensor[..., 4]`.
            deltas: `Tensor[..., 4 * K]` (K = 1, or one box per class); leading dims broadcast
                with the anchors'.
            max_shape: image `(H, W)`, or `Tensor[B, 2]` of per-image `(H, W)` when the leading
                dimension is the batch; boxes are clipped to `[0, W] x [0, H]` when given and
                `clip_border` is on.

        Returns:
            `Tensor[..., 4 * K]` boxes `x1, y1, x2, y2`.
        """
        if anchors.shape[-1] != 4 or deltas.shape[-1] % 4 != 0 or deltas.shape[-1] == 0:
            raise ShapeError(
                f"decode needs anchors (..., 4) and deltas (..., 4 * K), got {tuple(anchors.shape)} and {tuple(deltas.shape)}"
            )
        out_shape = torch.broadcast_shapes(anchors.shape[:-1], deltas.shape[:-1]) + (deltas.shape[-1],)
        k = deltas.shape[-1] // 4
        d = deltas.reshape(*deltas.shape[:-1], k, 4)
        if not d.is_floating_point():
            d = d.float()
        means = d.new_tensor(self.means)
        stds = d.new_tensor(self.stds)
        d = d * stds + means
        a = anchors.to(d.dtype).unsqueeze(-2)
        pw = a[..., 2] - a[..., 0]
        ph = a[..., 3] - a[..., 1]
        px = (a[..., 0] + a[..., 2]) * 0.5
        py = (a[..., 1] + a[..., 3]) * 0.5
        shift_x, shift_y = d[..., 0] * pw, d[..., 1] * ph
        if self.ctr_clamp is not None:
            shift_x = shift_x.clamp(-self.ctr_clamp, self.ctr_clamp)
            shift_y = shift_y.clamp(-self.ctr_clamp, self.ctr_clamp)
        gw = pw * d[..., 2].clamp(-self.max_ratio, self.max_ratio).exp()
        gh = ph * d[..., 3].clamp(-self.max_ratio, self.max_ratio).exp()
        gx, gy = px + shift_x, py + shift_y
        boxes = torch.stack([gx - 0.5 * gw, gy - 0.5 * gh, gx + 0.5 * gw, gy + 0.5 * gh], dim=-1)
        if max_shape is not None and self.clip_border:
            boxes = clip_boxes(boxes, max_shape)
        return boxes.reshape(out_shape)


def clip_boxes(boxes: Tensor, max_shape: Sequence[int] | Tensor) -> Tensor:
    """Clip `x1, y1, x2, y2` boxes `Tensor[..., 4]` to `[0, W] x [0, H]`.

    `max_shape` is `(H, W)` for all boxes or a `Tensor[B, 2]` of per-image `(H, W)` that applies
    along the first dimension of `boxes` (`Tensor[B, ..., 4]`).
    """
    if isinstance(max_shape, Tensor) and max_shape.dim() == 2:
        if max_shape.shape[-1] != 2 or boxes.dim() < 2 or max_shape.shape[0] != boxes.shape[0]:
            raise ShapeError(
                f"max_shape must be (H, W) or a (B, 2) tensor for boxes (B, ..., 4), got {tuple(max_shape.shape)} for {tuple(boxes.shape)}"
            )
        hw = max_shape.to(device=boxes.device, dtype=boxes.dtype).reshape(
            max_shape.shape[0], *([1] * (boxes.dim() - 2)), 2
        )
        h, w = hw[..., 0], hw[..., 1]
    else:
        if len(max_shape) != 2:
            raise ShapeError(f"max_shape must be (H, W), got {max_shape!r}")
        h = boxes.new_tensor(float(max_shape[0]))
        w = boxes.new_tensor(float(max_shape[1]))
    zero = boxes.new_zeros(())
    x1 = torch.minimum(torch.maximum(boxes[..., 0], zero), w)
    y1 = torch.minimum(torch.maximum(boxes[..., 1], zero), h)
    x2 = torch.minimum(torch.maximum(boxes[..., 2], zero), w)
    y2 = torch.minimum(torch.maximum(boxes[..., 3], zero), h)
    return torch.stack([x1, y1, x2, y2], dim=-1)


class DeltaXYZWLHRBBoxCoder:
    """Residual coder of 3D boxes against 3D anchors (SECOND / PointPillars, MMDetection3D's
    ``DeltaXYZWLHRBBoxCoder``).

    Boxes and anchors are ``Tensor[..., 7 + C]`` LiDAR boxes ``x, y, z, x_size, y_size, z_size,
    yaw`` with ``z`` the bottom centre, then ``C`` extra values (e.g. velocity). With the anchor's
    BEV diagonal ``d = sqrt(x_size_a^2 + y_size_a^2)`` and heights taken at the gravity centres::

        dx = (x - x_a) / d,   dy = (y - y_a) / d,   dz = (z_c - z_c_a) / z_size_a,
        dl = log(x_size / x_size_a),  dw = log(y_size / y_size_a),  dh = log(z_size / z_size_a),
        dr = yaw - yaw_a,  dc = c - c_a

    Args:
        code_size: ``7 + C``, the number of values per box.
    """

    def __init__(self, code_size: int = 7) -> None:
        if int(code_size) < 7:
            raise FormatError(f"code_size must be at least 7 (x, y, z, 3 sizes, yaw), got {code_size!r}")
        self.code_size = int(code_size)

    def _check(self, a: Tensor, b: Tensor, what: str) -> None:
        if a.shape != b.shape or a.shape[-1] != self.code_size:
            raise ShapeError(
                f"{what}: expected two tensors of the same shape (..., {self.code_size}), "
                f"got {tuple(a.shape)} and {tuple(b.shape)}"
            )

    def encode(self, anchors: Tensor, boxes: Tensor) -> Tensor:
        """Deltas that turn ``anchors`` into ``boxes`` (both ``Tensor[..., code_size]``)."""
        self._check(anchors, boxes, "encode")
        xa, ya, za, la, wa, ha, ra = anchors[..., :7].unbind(-1)
        xg, yg, zg, lg, wg, hg, rg = boxes[..., :7].unbind(-1)
        diagonal = torch.sqrt(la**2 + wa**2)
        deltas = [
            (xg - xa) / diagonal,
            (yg - ya) / diagonal,
            ((zg + hg / 2) - (za + ha / 2)) / ha,
            torch.log(lg / la),
            torch.log(wg / wa),
            torch.log(hg / ha),
            rg - ra,
        ]
        return torch.cat([torch.stack(deltas, dim=-1), boxes[..., 7:] - anchors[..., 7:]], dim=-1)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Boxes from ``anchors`` and predicted ``deltas`` (both ``Tensor[..., code_size]``)."""
        self._check(anchors, deltas, "decode")
        xa, ya, za, la, wa, ha, ra = anchors[..., :7].unbind(-1)
        xt, yt, zt, lt, wt, ht, rt = deltas[..., :7].unbind(-1)
        diagonal = torch.sqrt(la**2 + wa**2)
        height = torch.exp(ht) * ha
        boxes = [
            xt * diagonal + xa,
            yt * diagonal + ya,
            zt * ha + (za + ha / 2) - height / 2,
            torch.exp(lt) * la,
            torch.exp(wt) * wa,
            height,
            rt + ra,
        ]
        return torch.cat([torch.stack(boxes, dim=-1), deltas[..., 7:] + anchors[..., 7:]], dim=-1)
