"""FCOS (Tian et al., 2019): anchor-free, multi-level on FPN, with centerness and a GIoU loss.

Locations: cell ``(i, j)`` of a stride-``s`` level sits at pixel ``(j * s + s // 2, i * s + s //
2)`` (MMDetection's convention). Head: class and box towers of ``stacked_convs`` 3x3 conv +
GroupNorm + ReLU shared across levels; ``K`` class logits; 4 distances ``l, t, r, b`` =
``relu(scale_l * x) * s`` (a learnt scale per level, distances normalised by the stride); one
centerness logit from the box tower.

Targets, per image and location: the gts whose box contains the location (or, with
``center_sampling``, whose centre region of radius ``center_radius * s`` contains it, clipped to
the box) and whose largest distance ``max(l, t, r, b)`` lies in the level's ``regress_ranges``;
of those, the smallest-area gt. Centerness target ``sqrt(min(l, r) / max(l, r) * min(t, b) /
max(t, b))``.

Loss: focal loss over all real (not padding) locations / positives; GIoU over positives weighted
by their centerness targets / the sum of those; centerness BCE over positives / positives.
Inference: score = ``sqrt(sigmoid(class) * sigmoid(centerness))``, per level the ``nms_pre``
best above ``score_threshold``, class-aware NMS, ``max_per_img``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn import binary_cross_entropy, box_area, clip_boxes, giou_loss
from pc3d_det2d.detector import Detector2D
from pc3d_det2d.head_utils import (
    DenseHead2D,
    check_labels,
    conv_tower,
    init_dense_head,
    require_at_least,
    top_candidates,
)
from pc3d_det2d.structures import Detections2D

__all__ = ["FCOS", "FCOSHead", "fcos_points"]

INF = 1e8


def fcos_points(
    featmap_sizes: Sequence[tuple[int, int]], strides: Sequence[int], device: torch.device
) -> list[Tensor]:
    """Location centres of every level (see the module docstring).

    Args:
        featmap_sizes: ``(H_l, W_l)`` of each level.
        strides: each level's stride.
        device: where the result lives.

    Returns:
        Per level ``Tensor[H_l * W_l, 2]`` pixel ``x, y``, row-major.
    """
    out = []
    for (h, w), s in zip(featmap_sizes, strides):
        ys = torch.arange(h, device=device, dtype=torch.float32) * s + s // 2
        xs = torch.arange(w, device=device, dtype=torch.float32) * s + s // 2
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        out.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1))
    return out


class FCOSHead(DenseHead2D):
    """FCOS head (see the module docstring).

    Args:
        num_classes: object classes (no background class: the logits are sigmoids).
        in_channels: channels of every FPN level.
        feat_channels: channels of the towers.
        stacked_convs: conv-GN-ReLU layers per tower, at least 1.
        strides: stride of each level (P3-P7: 8, 16, 32, 64, 128).
        regress_ranges: ``[lo, hi]`` of ``max(l, t, r, b)`` per level, pixels; the last ``hi``
            may be ``-1`` for infinity. Default: FCOS's 64/128/256/512 split for P3-P7.
        center_sampling: positives only within ``center_radius * stride`` of a box's centre.
        center_radius: the centre region's radius, in strides.
        focal_gamma: the focal loss's focusing exponent.
        focal_alpha: its positive weight.
        score_threshold: inference: candidates scoring above it are kept.
        nms_pre: inference: candidates kept per level before NMS.
        iou_threshold: inference: NMS overlap threshold.
        max_per_img: inference: detections kept per image.

    Raises:
        FormatError: an argument out of range (named with its value), or not one regress range
            per level.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        regress_ranges: Sequence[Sequence[float]] = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, -1)),
        center_sampling: bool = True,
        center_radius: float = 1.5,
        focal_gamma: float = 2.0,
        focal_alpha: float = 0.25,
        score_threshold: float = 0.05,
        nms_pre: int = 1000,
        iou_threshold: float = 0.6,
        max_per_img: int = 100,
    ) -> None:
        super().__init__()
        require_at_least(
            "FCOSHead",
            1,
            num_classes=num_classes,
            in_channels=in_channels,
            feat_channels=feat_channels,
            stacked_convs=stacked_convs,
        )
        self.set_inference_settings(score_threshold, nms_pre, iou_threshold, max_per_img)
        if len(regress_ranges) != len(strides) or any(len(r) != 2 for r in regress_ranges):
            raise FormatError(
                f"FCOSHead: regress_ranges needs one [lo, hi] per level ({len(strides)}), got {regress_ranges!r}"
            )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.strides = tuple(int(s) for s in strides)
        self.regress_ranges = [(float(lo), INF if float(hi) < 0 else float(hi)) for lo, hi in regress_ranges]
        self.center_sampling, self.center_radius = center_sampling, float(center_radius)
        self.focal_gamma, self.focal_alpha = focal_gamma, focal_alpha
        self.cls_tower = conv_tower(in_channels, feat_channels, stacked_convs, group_norm=True)
        self.reg_tower = conv_tower(in_channels, feat_channels, stacked_convs, group_norm=True)
        self.cls_out = nn.Conv2d(feat_channels, num_classes, 3, padding=1)
        self.reg_out = nn.Conv2d(feat_channels, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(feat_channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        init_dense_head(self, self.cls_out)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Raw outputs of every level.

        Args:
            feats: FPN levels ``Tensor[B, C, H_l, W_l]``.

        Returns:
            Class logits ``Tensor[B, K, H_l, W_l]``, distances ``Tensor[B, 4, H_l, W_l]``
            (pixels, >= 0) and centerness logits ``Tensor[B, 1, H_l, W_l]`` per level.

        Raises:
            ShapeError: not one map per stride.
        """
        self.check_levels(feats)
        cls, reg, ctr = [], [], []
        for level, x in enumerate(feats):
            c, r = self.cls_tower(x), self.reg_tower(x)
            cls.append(self.cls_out(c))
            reg.append(F.relu(self.scales[level] * self.reg_out(r)) * self.strides[level])
            ctr.append(self.ctr_out(r))
        return cls, reg, ctr

    def targets(
        self,
        featmap_sizes: list[tuple[int, int]],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor,
        device: torch.device,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training targets of every location (see the module docstring).

        Args:
            featmap_sizes: ``(H_l, W_l)`` of each level.
            gt_boxes: per image ``Tensor[M_i, 4]`` pixel ``x1, y1, x2, y2``.
            gt_labels: per image ``Long[M_i]``.
            image_sizes: ``Long[B, 2]`` ``(h, w)`` before padding (locations on padding get -1).
            device: where the targets live.

        Returns:
            Class target ``Long[B, P]`` (``K`` background, -1 padding), distances
            ``Tensor[B, P, 4]`` and centerness target ``Tensor[B, P]`` over all levels' locations
            ``P``.
        """
        points_l = fcos_points(featmap_sizes, self.strides, device)
        points = torch.cat(points_l)  # [P, 2]
        ranges = torch.cat(
            [points.new_tensor(r).expand(p.shape[0], 2) for r, p in zip(self.regress_ranges, points_l)]
        )
        strides = torch.cat(
            [points.new_full((p.shape[0],), float(s)) for s, p in zip(self.strides, points_l)]
        )
        labels_out, ltrb_out, ctr_out = [], [], []
        for b in range(len(gt_boxes)):  # per image: gt counts differ
            gts = gt_boxes[b].to(device=device, dtype=torch.float32).reshape(-1, 4)
            labels = gt_labels[b].to(device)
            h, w = (float(v) for v in image_sizes[b].tolist())
            real = (points[:, 0] < w) & (points[:, 1] < h)
            if gts.shape[0] == 0:
                target = torch.full((points.shape[0],), self.num_classes, dtype=torch.long, device=device)
                labels_out.append(torch.where(real, target, torch.full_like(target, -1)))
                ltrb_out.append(points.new_zeros(points.shape[0], 4))
                ctr_out.append(points.new_zeros(points.shape[0]))
                continue
            x, y = points[:, 0:1], points[:, 1:2]  # [P, 1]
            ltrb = torch.stack(
                [x - gts[:, 0], y - gts[:, 1], gts[:, 2] - x, gts[:, 3] - y], dim=-1
            )  # [P, M, 4]
            inside = self._candidates(points, gts, strides) if self.center_sampling else ltrb.amin(dim=-1) > 0
            reach = ltrb.amax(dim=-1)
            in_range = (reach >= ranges[:, 0:1]) & (reach <= ranges[:, 1:2])
            area = box_area(gts)[None].expand_as(reach)
            area = torch.where(inside & in_range, area, torch.full_like(area, INF))
            best_area, best = area.min(dim=1)
            positive = (best_area < INF) & real
            target = torch.where(positive, labels[best], torch.full_like(best, self.num_classes))
            target = torch.where(real, target, torch.full_like(target, -1))
            dist = ltrb[torch.arange(points.shape[0], device=device), best]  # [P, 4]
            lr_, tb = dist[:, 0::2], dist[:, 1::2]
            centerness = torch.sqrt(
                (lr_.amin(-1) / lr_.amax(-1).clamp(min=1e-6)).clamp(min=0)
                * (tb.amin(-1) / tb.amax(-1).clamp(min=1e-6)).clamp(min=0)
            )
            labels_out.append(target)
            ltrb_out.append(dist)
            ctr_out.append(torch.where(positive, centerness, torch.zeros_like(centerness)))
        return torch.stack(labels_out), torch.stack(ltrb_out), torch.stack(ctr_out)

    def _candidates(self, points: Tensor, gts: Tensor, strides: Tensor) -> Tensor:
        """``Bool[P, M]``: location ``p`` lies strictly inside gt ``m``'s centre region (radius
        ``center_radius * stride`` around its centre, clipped to the box)."""
        x, y = points[:, 0:1], points[:, 1:2]  # [P, 1]
        cx, cy = (gts[:, 0] + gts[:, 2]) / 2, (gts[:, 1] + gts[:, 3]) / 2
        radius = strides[:, None] * self.center_radius
        x1 = torch.maximum(cx - radius, gts[:, 0])
        y1 = torch.maximum(cy - radius, gts[:, 1])
        x2 = torch.minimum(cx + radius, gts[:, 2])
        y2 = torch.minimum(cy + radius, gts[:, 3])
        return (x > x1) & (y > y1) & (x < x2) & (y < y2)

    def _flat(
        self, cls: Sequence[Tensor], reg: Sequence[Tensor], ctr: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        b = cls[0].shape[0]
        return (
            torch.cat([c.permute(0, 2, 3, 1).reshape(b, -1, self.num_classes) for c in cls], 1),
            torch.cat([r.permute(0, 2, 3, 1).reshape(b, -1, 4) for r in reg], 1),
            torch.cat([c.reshape(b, -1) for c in ctr], 1),
        )

    def loss_from_outputs(
        self,
        cls: Sequence[Tensor],
        reg: Sequence[Tensor],
        ctr: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor,
    ) -> dict[str, Tensor]:
        """The loss of raw head outputs (as :meth:`forward` returns them; see :meth:`loss`):
        ``{"loss_cls", "loss_bbox", "loss_centerness"}``."""
        check_labels(gt_labels, self.num_classes, f"{self.config_key}.num_classes")
        sizes = [tuple(c.shape[-2:]) for c in cls]
        device = cls[0].device
        target, ltrb_t, ctr_t = self.targets(sizes, gt_boxes, gt_labels, image_sizes, device)  # type: ignore[arg-type]
        logits, ltrb, ctr_logit = self._flat(cls, reg, ctr)
        points = torch.cat(fcos_points(sizes, self.strides, device))[None].expand(logits.shape[0], -1, -1)
        positive = (target >= 0) & (target < self.num_classes)
        num_pos = max(float(positive.sum()), 1.0)
        loss_cls = self.classification_loss(logits, target, num_pos)
        p = points[positive]
        pred_boxes = torch.cat([p - ltrb[positive][:, :2], p + ltrb[positive][:, 2:]], dim=1)
        gt_boxes_pos = torch.cat([p - ltrb_t[positive][:, :2], p + ltrb_t[positive][:, 2:]], dim=1)
        weight = ctr_t[positive]
        loss_bbox = giou_loss(pred_boxes, gt_boxes_pos, weight=weight, reduction="sum") / max(
            float(weight.sum()), 1e-6
        )
        loss_ctr = binary_cross_entropy(ctr_logit[positive], ctr_t[positive], reduction="sum") / num_pos
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    @torch.no_grad()
    def decode(
        self, cls: Sequence[Tensor], reg: Sequence[Tensor], ctr: Sequence[Tensor], image_sizes: Tensor
    ) -> list[Detections2D]:
        """Raw head outputs -> detections per image (see the module docstring).

        Args:
            cls: per level ``Tensor[B, K, H_l, W_l]`` class logits.
            reg: per level ``Tensor[B, 4, H_l, W_l]`` distances.
            ctr: per level ``Tensor[B, 1, H_l, W_l]`` centerness logits.
            image_sizes: ``Long[B, 2]`` ``(h, w)``; boxes are clipped to them.

        Returns:
            One :class:`Detections2D` per image.
        """
        sizes = [tuple(c.shape[-2:]) for c in cls]
        batch, device = cls[0].shape[0], cls[0].device
        points_l = fcos_points(sizes, self.strides, device)
        hw = image_sizes.to(device=device, dtype=torch.float32)
        levels = []
        for c, r, t, pts in zip(cls, reg, ctr, points_l):
            score = (c.sigmoid() * t.sigmoid()).sqrt().permute(0, 2, 3, 1).reshape(batch, -1)  # [B, HW*K]
            top, loc, labels = top_candidates(score, self.num_classes, self.nms_pre)
            dist = r.permute(0, 2, 3, 1).reshape(batch, -1, 4).gather(1, loc[..., None].expand(-1, -1, 4))
            p = pts[loc]  # [B, k, 2]
            levels.append(
                (clip_boxes(torch.cat([p - dist[..., :2], p + dist[..., 2:]], dim=-1), hw), top, labels)
            )
        return self.detections(levels)


class FCOS(Detector2D):
    """Backbone + FPN + :class:`FCOSHead`; arguments and errors as :class:`Detector2D`."""

    head_type = FCOSHead
