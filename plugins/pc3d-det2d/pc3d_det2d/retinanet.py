"""RetinaNet (Lin et al., 2017): ResNet + FPN P3-P7, anchors, focal loss, max-IoU assignment.

Head: on every level, ``stacked_convs`` 3x3 conv + ReLU towers for classes and for boxes (shared
across levels), then a 3x3 conv to ``A * C`` class logits and one to ``A * 4`` deltas
(``DeltaXYWHBBoxCoder``); channel ``a * C + c`` is class ``c`` of base anchor ``a`` (the order of
``AnchorGenerator.grid_anchors``). The class bias starts at ``-log((1 - pi) / pi)``, ``pi = 0.01``,
so that the focal loss starts small.

Training: anchors on padding are ignored; the others are assigned by ``MaxIoUAssigner``
(``pos_iou_thr`` / ``neg_iou_thr``, low-quality matches from ``min_pos_iou``); the focal loss runs
over every positive and negative anchor, the box loss over positives, both divided by the
number of positives in the batch (at least 1).

Inference: per level, the ``nms_pre`` best (anchor, class) scores above ``score_threshold`` are
decoded and clipped; class-aware NMS over all levels; ``max_per_img`` kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn import (
    AnchorGenerator,
    DeltaXYWHBBoxCoder,
    MaxIoUAssigner,
    l1_loss,
    smooth_l1_loss,
)
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

__all__ = ["RetinaHead", "RetinaNet"]


class RetinaHead(DenseHead2D):
    """RetinaNet's head (see the module docstring).

    Args:
        num_classes: object classes (no background class: the logits are sigmoids).
        in_channels: channels of every FPN level.
        feat_channels: channels of the towers.
        stacked_convs: convs per tower (0: the output convs read the FPN levels directly).
        strides: stride of each level (P3-P7: 8, 16, 32, 64, 128).
        octave_base_scale: anchor size at the first scale, in strides.
        scales_per_octave: anchor scales per octave (size = stride x base scale x
            2^(i / scales_per_octave)).
        ratios: anchor height / width ratios.
        pos_iou_thr: the max-IoU assigner's positive threshold.
        neg_iou_thr: its negative threshold.
        min_pos_iou: the lowest IoU of a low-quality match.
        focal_gamma: the focal loss's focusing exponent.
        focal_alpha: its positive weight.
        bbox_loss: ``"l1"`` or ``"smooth_l1"`` (with ``smooth_l1_beta``) on the deltas.
        smooth_l1_beta: the smooth-L1 transition point.
        bbox_loss_weight: weight of the box loss.
        score_threshold: inference: candidates scoring above it are kept.
        nms_pre: inference: candidates kept per level before NMS.
        iou_threshold: inference: NMS overlap threshold.
        max_per_img: inference: detections kept per image.

    Raises:
        FormatError: an argument out of range (named with its value).
    """

    # The channel, stride, focal and inference arguments are FCOSHead's, spelled out in each signature:
    # the config layer checks a YAML head against its class's own keyword arguments.
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        octave_base_scale: float = 4.0,
        scales_per_octave: int = 3,
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        pos_iou_thr: float = 0.5,
        neg_iou_thr: float = 0.4,
        min_pos_iou: float = 0.0,
        focal_gamma: float = 2.0,
        focal_alpha: float = 0.25,
        bbox_loss: Literal["l1", "smooth_l1"] = "l1",
        smooth_l1_beta: float = 0.11,
        bbox_loss_weight: float = 1.0,
        score_threshold: float = 0.05,
        nms_pre: int = 1000,
        iou_threshold: float = 0.5,
        max_per_img: int = 100,
    ) -> None:
        super().__init__()
        require_at_least(
            "RetinaHead", 1, num_classes=num_classes, in_channels=in_channels, feat_channels=feat_channels
        )
        require_at_least("RetinaHead", 0, stacked_convs=stacked_convs)
        self.set_inference_settings(score_threshold, nms_pre, iou_threshold, max_per_img)
        if bbox_loss not in ("l1", "smooth_l1"):
            raise FormatError(f"RetinaHead: bbox_loss must be 'l1' or 'smooth_l1', got {bbox_loss!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.strides = tuple(int(s) for s in strides)
        self.anchor_generator = AnchorGenerator(
            strides=list(self.strides),
            ratios=ratios,
            octave_base_scale=octave_base_scale,
            scales_per_octave=scales_per_octave,
        )
        self.num_anchors = self.anchor_generator.num_base_anchors[0]
        self.bbox_coder = DeltaXYWHBBoxCoder()
        self.assigner = MaxIoUAssigner(
            pos_iou_thr=pos_iou_thr, neg_iou_thr=neg_iou_thr, min_pos_iou=min_pos_iou
        )
        self.focal_gamma, self.focal_alpha = focal_gamma, focal_alpha
        self.bbox_loss, self.smooth_l1_beta, self.bbox_loss_weight = (
            bbox_loss,
            smooth_l1_beta,
            bbox_loss_weight,
        )
        self.cls_tower = conv_tower(in_channels, feat_channels, stacked_convs)
        self.reg_tower = conv_tower(in_channels, feat_channels, stacked_convs)
        tower_out = feat_channels if stacked_convs > 0 else in_channels
        self.cls_out = nn.Conv2d(tower_out, self.num_anchors * num_classes, 3, padding=1)
        self.reg_out = nn.Conv2d(tower_out, self.num_anchors * 4, 3, padding=1)
        init_dense_head(self, self.cls_out)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs of every level.

        Args:
            feats: FPN levels ``Tensor[B, C_in, H_l, W_l]``.

        Returns:
            Logits ``Tensor[B, A*K, H_l, W_l]`` and deltas ``Tensor[B, A*4, H_l, W_l]`` per level.

        Raises:
            ShapeError: not one map per stride.
        """
        self.check_levels(feats)
        return [self.cls_out(self.cls_tower(x)) for x in feats], [
            self.reg_out(self.reg_tower(x)) for x in feats
        ]

    def _flat(
        self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per level: logits ``Tensor[B, N_l, K]``, deltas ``Tensor[B, N_l, 4]``, anchors ``Tensor[N_l, 4]``."""
        sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        anchors = self.anchor_generator.grid_anchors(
            sizes, device=cls_scores[0].device, dtype=cls_scores[0].dtype
        )
        b = cls_scores[0].shape[0]
        logits = [s.permute(0, 2, 3, 1).reshape(b, -1, self.num_classes) for s in cls_scores]
        deltas = [d.permute(0, 2, 3, 1).reshape(b, -1, 4) for d in bbox_preds]
        return logits, deltas, anchors

    def targets(
        self,
        anchors: Tensor,
        featmap_sizes: list[tuple[int, int]],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training targets of every anchor.

        Args:
            anchors: ``Tensor[N, 4]``, every level's anchors.
            featmap_sizes: ``(H_l, W_l)`` of each level.
            gt_boxes: per image ``Tensor[M_i, 4]`` pixel ``x1, y1, x2, y2``.
            gt_labels: per image ``Long[M_i]``.
            image_sizes: ``Long[B, 2]`` ``(h, w)`` before padding (anchors on padding are ignored).

        Returns:
            Class target ``Long[B, N]`` (``K`` = background, -1 = ignored), assigned gt box
            ``Tensor[B, N, 4]`` and the positive mask ``Bool[B, N]``.
        """
        labels, boxes, positive = [], [], []
        for b in range(len(gt_boxes)):  # per image: the number of gts differs
            valid = torch.cat(
                self.anchor_generator.valid_flags(
                    featmap_sizes, image_sizes[b].tolist(), device=anchors.device
                )
            )
            gts = gt_boxes[b].to(anchors).reshape(-1, 4)
            result = self.assigner.assign(anchors, gts, gt_labels[b].to(anchors.device))
            target = torch.full_like(result.gt_inds, self.num_classes)
            target = torch.where(result.pos_mask, result.labels, target)  # type: ignore[arg-type]
            target = torch.where((result.gt_inds < 0) | ~valid, torch.full_like(target, -1), target)
            pos = result.pos_mask & valid
            assigned = (
                gts[(result.gt_inds - 1).clamp(min=0)]
                if gts.shape[0] > 0
                else anchors.new_zeros(anchors.shape)
            )
            labels.append(target)
            boxes.append(assigned)
            positive.append(pos)
        return torch.stack(labels), torch.stack(boxes), torch.stack(positive)

    def loss_from_outputs(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor,
    ) -> dict[str, Tensor]:
        """The loss of raw head outputs (as :meth:`forward` returns them; see :meth:`loss`):
        ``{"loss_cls", "loss_bbox"}``."""
        check_labels(gt_labels, self.num_classes, f"{self.config_key}.num_classes")
        logits, deltas, anchors_per_level = self._flat(cls_scores, bbox_preds)
        logit, delta, anchors = torch.cat(logits, 1), torch.cat(deltas, 1), torch.cat(anchors_per_level)
        featmap_sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        target, assigned, positive = self.targets(anchors, featmap_sizes, gt_boxes, gt_labels, image_sizes)  # type: ignore[arg-type]
        num_pos = max(float(positive.sum()), 1.0)
        loss_cls = self.classification_loss(logit, target, num_pos)
        pos_anchors = anchors[None].expand_as(assigned)[positive]
        pos_targets = self.bbox_coder.encode(pos_anchors, assigned[positive])
        if self.bbox_loss == "l1":
            loss_bbox = l1_loss(delta[positive], pos_targets, reduction="sum")
        else:
            loss_bbox = smooth_l1_loss(
                delta[positive], pos_targets, beta=self.smooth_l1_beta, reduction="sum"
            )
        return {"loss_cls": loss_cls, "loss_bbox": self.bbox_loss_weight * loss_bbox / num_pos}

    # Same docstring and per-level loop as FCOSHead.decode on purpose: each head scores and decodes its own
    # outputs; the candidates' NMS and selection they share is DenseHead2D.detections.
    @torch.no_grad()
    def decode(
        self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor], image_sizes: Tensor
    ) -> list[Detections2D]:
        """Raw head outputs -> detections per image (see the module docstring).

        Args:
            cls_scores: per level ``Tensor[B, A*K, H_l, W_l]`` logits.
            bbox_preds: per level ``Tensor[B, A*4, H_l, W_l]`` deltas.
            image_sizes: ``Long[B, 2]`` ``(h, w)``; boxes are clipped to them.

        Returns:
            One :class:`Detections2D` per image.
        """
        logits, deltas, anchors = self._flat(cls_scores, bbox_preds)
        batch = logits[0].shape[0]
        sizes = image_sizes.to(device=logits[0].device, dtype=logits[0].dtype)
        levels = []
        for lg, dl, an in zip(logits, deltas, anchors):
            top, anchor_index, labels = top_candidates(
                lg.sigmoid().reshape(batch, -1), self.num_classes, self.nms_pre
            )
            picked = dl.gather(1, anchor_index[..., None].expand(-1, -1, 4))
            levels.append((self.bbox_coder.decode(an[anchor_index], picked, max_shape=sizes), top, labels))
        return self.detections(levels)


class RetinaNet(Detector2D):
    """ResNet (or any backbone with ``out_channels``) + FPN + :class:`RetinaHead`; arguments and
    errors as :class:`Detector2D`."""

    head_type = RetinaHead
