"""Faster R-CNN with FPN (Ren et al., 2015; Lin et al., 2017): ``pc3d.nn.RPNHead`` proposals,
multi-level RoI Align, a two-fc box head with per-class deltas.

RoI level: a proposal of size ``sqrt(w h)`` reads the FPN level
``floor(log2(sqrt(w h) / finest_scale + 1e-6))`` clamped to the RoI levels (MMDetection's rule:
below ``2 * finest_scale`` the finest level).

Training of the box head: per image, the proposals (with the gts added as proposals) are
assigned by ``MaxIoUAssigner`` (``pos_iou_thr``; no low-quality matches) and ``RandomSampler``
draws ``num_samples`` of them, ``pos_fraction`` positive; cross-entropy over ``K + 1`` classes
(index ``K`` = background) and smooth L1 on the positives' deltas of their class (coder stds
0.1, 0.1, 0.2, 0.2), both over the number of sampled RoIs.

Inference: softmax scores ``[R, K]`` and per-class boxes ``[R, K, 4]``; pairs above
``score_threshold``; class-aware NMS; ``max_per_img`` kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import (
    FPN,
    AnchorGenerator,
    DeltaXYWHBBoxCoder,
    MaxIoUAssigner,
    RandomSampler,
    RPNHead,
    clip_boxes,
    roi_align,
    smooth_l1_loss,
)
from pc3d_det2d.detector import FPNDetector2D, check_backbone_neck, check_head_strides
from pc3d_det2d.head_utils import check_inference_args, check_labels, require_at_least
from pc3d_det2d.structures import Detections2D, batched_image_nms

__all__ = ["FasterRCNN", "RoIBoxHead", "build_rpn_head"]


def build_rpn_head(
    in_channels: int,
    feat_channels: int = 256,
    strides: Sequence[int] = (4, 8, 16, 32, 64),
    anchor_scales: Sequence[float] = (8.0,),
    anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    nms_pre: int = 1000,
    max_per_img: int = 1000,
    iou_threshold: float = 0.7,
    num_samples: int = 256,
) -> RPNHead:
    """A ``pc3d.nn.RPNHead`` from plain arguments (registered as head ``RPNHead``).

    Args:
        in_channels: channels of every FPN level.
        feat_channels: channels of the shared conv.
        strides: stride of each level.
        anchor_scales: anchor sizes in strides (an anchor is ``stride * scale`` wide).
        anchor_ratios: anchor height / width ratios.
        nms_pre: proposals kept per level before NMS.
        max_per_img: proposals kept per image after NMS.
        iou_threshold: NMS overlap threshold.
        num_samples: anchors sampled per image for the loss, half of them positive.

    Returns:
        The RPN head.

    Raises:
        FormatError: an argument out of range (named with its value).
    """
    require_at_least(
        "RPNHead", 1, in_channels=in_channels, feat_channels=feat_channels, num_samples=num_samples
    )
    check_inference_args("RPNHead", 0.0, iou_threshold, max_per_img, nms_pre)
    return RPNHead(
        in_channels=in_channels,
        feat_channels=feat_channels,
        anchor_generator=AnchorGenerator(strides=list(strides), ratios=anchor_ratios, scales=anchor_scales),
        nms_pre=nms_pre,
        max_per_img=max_per_img,
        iou_threshold=iou_threshold,
        sampler=RandomSampler(num=num_samples, pos_fraction=0.5, add_gt_as_proposals=False),
    )


def roi_levels(rois: Tensor, num_levels: int, finest_scale: float) -> Tensor:
    """The FPN level each RoI reads (see the module docstring).

    Args:
        rois: ``Tensor[R, 4]`` boxes ``x1, y1, x2, y2``.
        num_levels: the number of RoI levels.
        finest_scale: the scale below which a RoI reads the finest level's half.

    Returns:
        ``Long[R]`` level indices in ``[0, num_levels)``.
    """
    scale = ((rois[:, 2] - rois[:, 0]).clamp(min=0) * (rois[:, 3] - rois[:, 1]).clamp(min=0)).sqrt()
    return torch.floor(torch.log2(scale / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()


class RoIBoxHead(nn.Module):
    """RoI Align over FPN levels + two shared fc layers + class scores and per-class deltas.

    Args:
        num_classes: object classes ``K`` (the background class is added).
        in_channels: FPN channels.
        strides: strides of the FPN levels RoIs read (usually the first four).
        roi_size: RoI Align output side.
        sampling_ratio: RoI Align samples per bin side (0: adaptive).
        fc_channels: width of the two fc layers.
        finest_scale: RoI level rule (see the module docstring).
        pos_iou_thr: a proposal overlapping a gt at least this much is positive.
        num_samples: RoIs sampled per image for the loss.
        pos_fraction: the largest share of positives among them.
        score_threshold: inference: (RoI, class) pairs scoring above it are kept.
        iou_threshold: inference: NMS overlap threshold.
        max_per_img: inference: detections kept per image.

    Attributes:
        config_key: where configs put the head (``model.roi_head``, as :class:`FasterRCNN` holds
            it); a label outside ``num_classes`` is reported against ``<config_key>.num_classes``.

    Raises:
        FormatError: an argument out of range (named with its value).
    """

    # Same docstring sections and argument head as RetinaHead/FCOSHead on purpose: each head documents its own
    # arguments, and Faster R-CNN's RoI head is no dense head.
    config_key = "model.roi_head"

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        strides: Sequence[int] = (4, 8, 16, 32),
        roi_size: int = 7,
        sampling_ratio: int = 2,
        fc_channels: int = 1024,
        finest_scale: float = 56.0,
        pos_iou_thr: float = 0.5,
        num_samples: int = 512,
        pos_fraction: float = 0.25,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.5,
        max_per_img: int = 100,
    ) -> None:
        super().__init__()
        require_at_least(
            "RoIBoxHead",
            1,
            num_classes=num_classes,
            in_channels=in_channels,
            roi_size=roi_size,
            fc_channels=fc_channels,
            num_samples=num_samples,
        )
        require_at_least("RoIBoxHead", 0, sampling_ratio=sampling_ratio)
        check_inference_args("RoIBoxHead", score_threshold, iou_threshold, max_per_img)
        if not 0.0 < pos_fraction <= 1.0:
            raise FormatError(f"RoIBoxHead: pos_fraction must lie in (0, 1], got {pos_fraction!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.strides = tuple(int(s) for s in strides)
        self.roi_size, self.sampling_ratio, self.finest_scale = roi_size, sampling_ratio, float(finest_scale)
        self.assigner = MaxIoUAssigner(
            pos_iou_thr=pos_iou_thr, neg_iou_thr=pos_iou_thr, min_pos_iou=pos_iou_thr, match_low_quality=False
        )
        self.sampler = RandomSampler(num=num_samples, pos_fraction=pos_fraction, add_gt_as_proposals=True)
        self.bbox_coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
        self.score_threshold, self.iou_threshold, self.max_per_img = (
            score_threshold,
            iou_threshold,
            max_per_img,
        )
        self.fc1 = nn.Linear(in_channels * roi_size * roi_size, fc_channels)
        self.fc2 = nn.Linear(fc_channels, fc_channels)
        self.cls_out = nn.Linear(fc_channels, num_classes + 1)
        self.reg_out = nn.Linear(fc_channels, num_classes * 4)
        nn.init.normal_(self.cls_out.weight, 0, 0.01)
        nn.init.normal_(self.reg_out.weight, 0, 0.001)
        nn.init.zeros_(self.cls_out.bias)
        nn.init.zeros_(self.reg_out.bias)

    def pool(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """RoI Align of every RoI on its level (one ``roi_align`` call per level).

        Args:
            feats: the RoI levels ``Tensor[B, C, H_l, W_l]``.
            rois: ``Tensor[R, 5]`` rows ``(image, x1, y1, x2, y2)``.

        Returns:
            ``Tensor[R, C, S, S]``.
        """
        levels = roi_levels(rois[:, 1:], len(self.strides), self.finest_scale)
        out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], self.roi_size, self.roi_size))
        for level, (feat, stride) in enumerate(zip(feats, self.strides)):
            index = torch.nonzero(levels == level).flatten()
            if index.numel() > 0:
                out[index] = roi_align(
                    feat, rois[index], self.roi_size, 1.0 / stride, self.sampling_ratio, aligned=True
                )
        return out

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and per-class deltas of RoIs.

        Args:
            feats: FPN levels (the first ``len(strides)`` are read).
            rois: ``Tensor[R, 5]`` rows ``(image, x1, y1, x2, y2)``.

        Returns:
            Class logits ``Tensor[R, K + 1]`` (index ``K`` = background) and deltas
            ``Tensor[R, 4K]``.

        Raises:
            ShapeError: fewer levels than ``strides``.
        """
        if len(feats) < len(self.strides):
            raise ShapeError(f"RoIBoxHead reads {len(self.strides)} levels, got {len(feats)}")
        x = self.pool(feats[: len(self.strides)], rois).flatten(1)
        x = F.relu(self.fc2(F.relu(self.fc1(x))))
        return self.cls_out(x), self.reg_out(x)

    def loss(
        self,
        feats: Sequence[Tensor],
        proposals: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        """Training losses of the box head (see the module docstring).

        Args:
            feats: FPN levels.
            proposals: per image ``Tensor[P_i, 4+]`` RPN proposals (the gts are added).
            gt_boxes: per image ``Tensor[M_i, 4]`` pixel ``x1, y1, x2, y2``.
            gt_labels: per image ``Long[M_i]`` in ``[0, num_classes)``.

        Returns:
            ``{"loss_roi_cls", "loss_roi_bbox"}``.

        Raises:
            FormatError: a label outside ``[0, num_classes)`` (naming ``<config_key>.num_classes``).
        """
        check_labels(gt_labels, self.num_classes, f"{self.config_key}.num_classes")
        rois, labels, targets, positive = [], [], [], []
        for b, (props, gts, gl) in enumerate(zip(proposals, gt_boxes, gt_labels)):  # per image
            props = props[:, :4].detach()
            gts = gts.to(props).reshape(-1, 4)
            gl = gl.to(props.device)
            assigned = self.assigner.assign(props, gts, gl)
            sampled = self.sampler.sample(assigned, props, gts, gl)
            boxes = sampled.boxes
            num_pos = sampled.pos_inds.numel()
            label = torch.full((boxes.shape[0],), self.num_classes, dtype=torch.long, device=props.device)
            if num_pos > 0:
                label[:num_pos] = sampled.pos_gt_labels  # type: ignore[assignment]
            target = boxes.new_zeros(boxes.shape)
            if num_pos > 0:
                target[:num_pos] = self.bbox_coder.encode(sampled.pos_boxes, sampled.pos_gt_boxes)
            rois.append(torch.cat([boxes.new_full((boxes.shape[0], 1), float(b)), boxes], dim=1))
            labels.append(label)
            targets.append(target)
            positive.append(label < self.num_classes)
        roi = torch.cat(rois)
        label, target, pos = torch.cat(labels), torch.cat(targets), torch.cat(positive)
        logits, deltas = self(feats, roi)
        count = max(roi.shape[0], 1)
        loss_cls = F.cross_entropy(logits, label, reduction="sum") / count
        pos_idx = torch.nonzero(pos).flatten()
        pos_deltas = deltas.reshape(-1, self.num_classes, 4)[pos_idx, label[pos_idx]]
        loss_bbox = smooth_l1_loss(pos_deltas, target[pos_idx], beta=1.0, reduction="sum") / count
        return {"loss_roi_cls": loss_cls, "loss_roi_bbox": loss_bbox}

    @torch.no_grad()
    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Tensor], image_sizes: Tensor
    ) -> list[Detections2D]:
        """Detections per image from the proposals (see :meth:`decode`)."""
        batch = len(proposals)
        device = feats[0].device
        counts = [p.shape[0] for p in proposals]
        boxes = torch.cat([p[:, :4] for p in proposals])
        image = torch.arange(batch, device=device).repeat_interleave(torch.tensor(counts, device=device))
        logits, deltas = self(feats, torch.cat([image[:, None].to(boxes.dtype), boxes], dim=1))
        return self.decode(boxes, image, logits, deltas, image_sizes, batch)

    def decode(
        self, rois: Tensor, image: Tensor, logits: Tensor, deltas: Tensor, image_sizes: Tensor, batch: int
    ) -> list[Detections2D]:
        """RoIs with their head outputs -> detections per image (see the module docstring).

        Args:
            rois: ``Tensor[R, 4]`` boxes.
            image: ``Long[R]``, the image of each RoI.
            logits: ``Tensor[R, K + 1]``.
            deltas: ``Tensor[R, 4K]``.
            image_sizes: ``Long[B, 2]`` ``(h, w)``; boxes are clipped to them.
            batch: ``B``.

        Returns:
            One :class:`Detections2D` per image.
        """
        k = self.num_classes
        scores = logits.softmax(dim=1)[:, :k]  # [R, K]
        boxes = self.bbox_coder.decode(
            rois[:, None, :], deltas.reshape(-1, k, 4), max_shape=None
        )  # [R, K, 4]
        boxes = clip_boxes(boxes, image_sizes.to(rois)[image])  # each RoI's own image size
        labels = torch.arange(k, device=rois.device).expand(rois.shape[0], k)
        keep = scores > self.score_threshold
        return batched_image_nms(
            boxes[keep],
            scores[keep],
            labels[keep],
            image[:, None].expand(-1, k)[keep],
            batch,
            k,
            self.iou_threshold,
            self.max_per_img,
        )


class FasterRCNN(FPNDetector2D):
    """Backbone + FPN + ``pc3d.nn.RPNHead`` (``rpn_head``, registered as ``RPNHead``) +
    :class:`RoIBoxHead`, with the engine's ``loss`` / ``predict`` of :class:`FPNDetector2D` (batch
    keys as in :mod:`pc3d_det2d.detector`).

    Args:
        backbone: feature extractor with ``out_channels`` (and ``out_strides``).
        neck: the FPN over the backbone's outputs.
        rpn_head: the region proposal head.
        roi_head: the box head.

    Raises:
        FormatError: heads of the wrong types.
        ShapeError: channels or strides that do not chain.
    """

    def __init__(self, backbone: nn.Module, neck: FPN, rpn_head: RPNHead, roi_head: RoIBoxHead) -> None:
        super().__init__()
        if not isinstance(rpn_head, RPNHead) or not isinstance(roi_head, RoIBoxHead):
            raise FormatError("FasterRCNN needs rpn_head: RPNHead and roi_head: RoIBoxHead")
        check_backbone_neck(backbone, neck)
        check_head_strides([int(s[0]) for s in rpn_head.anchor_generator.strides], neck, "rpn_head")
        if neck.out_strides is not None and tuple(roi_head.strides) != tuple(
            neck.out_strides[: len(roi_head.strides)]
        ):
            raise ShapeError(
                f"roi_head strides {list(roi_head.strides)} are not the neck's first strides {list(neck.out_strides)}"
            )
        for name, head in (("rpn_head", rpn_head), ("roi_head", roi_head)):
            if head.in_channels != neck.out_channels[0]:
                raise ShapeError(
                    f"{name}.in_channels is {head.in_channels} but the neck gives {neck.out_channels[0]} channels"
                )
        self.backbone, self.neck, self.rpn_head, self.roi_head = backbone, neck, rpn_head, roi_head

    def head_losses(
        self, feats: Sequence[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor], image_sizes: Tensor
    ) -> dict[str, Tensor]:
        """The RPN's losses and the box head's on the RPN's proposals."""
        scores, deltas = self.rpn_head(feats)
        losses = self.rpn_head.loss(scores, deltas, gt_boxes, image_sizes)
        proposals = self.rpn_head.get_proposals(scores, deltas, image_sizes)
        losses.update(self.roi_head.loss(feats, proposals, gt_boxes, gt_labels))
        return losses

    def head_predict(self, feats: Sequence[Tensor], image_sizes: Tensor) -> list[Detections2D]:
        """The box head's detections on the RPN's proposals."""
        proposals = self.rpn_head.get_proposals(*self.rpn_head(feats), image_sizes)
        return self.roi_head.predict(feats, proposals, image_sizes)
