"""Region Proposal Network (Ren et al., 2015): a shared head over FPN levels, proposals, loss.

Head: `num_convs` 3x3 convs + ReLU shared by all levels, then a 1x1 conv giving `A` objectness
logits and a 1x1 conv giving `4 A` box deltas per location (`A` anchors per location, the same
on every level). Channel `a` of the objectness map and channels `4a .. 4a+3` of the delta map
belong to base anchor `a` (the order of `AnchorGenerator.grid_anchors`).

Proposals, per image and level: the `nms_pre` best-scored anchors (sigmoid objectness) are
decoded and clipped to the image; boxes no larger than `min_bbox_size` on a side and non-finite
boxes are dropped; NMS at `iou_threshold` runs separately per level (as in Detectron2,
torchvision and MMDetection, whose RPNs use the level as the NMS class), or across levels with
`nms_across_levels`; the `max_per_img` best survivors over all levels are the proposals. All
images and levels go through one `pc3d.ops.batched_nms_2d` call.

Loss: anchors on padding (`AnchorGenerator.valid_flags`) are left out; the rest are assigned by a
`MaxIoUAssigner` (default 0.7 / 0.3, low-quality matches at >= 0.3) and sampled by a
`RandomSampler` (default 256 per image, half positive); objectness takes a sigmoid cross-entropy
over the sampled anchors and the deltas an L1 loss over the positives, both averaged over the
number of sampled anchors in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.anchors import AnchorGenerator
from pc3d.nn.assigners import MaxIoUAssigner, RandomSampler
from pc3d.nn.box_coders import DeltaXYWHBBoxCoder
from pc3d.nn.losses import CrossEntropyLoss, L1Loss
from pc3d.ops import batched_nms_2d


def _image_sizes(image_sizes: Sequence[Sequence[int]] | Tensor, batch: int, device: torch.device) -> Tensor:
    sizes = torch.as_tensor(image_sizes, dtype=torch.float32, device=device)
    if sizes.shape != (batch, 2):
        raise ShapeError(
            f"image_sizes must give (H, W) for each of the {batch} images, got shape {tuple(sizes.shape)}"
        )
    return sizes


class RPNHead(nn.Module):
    """RPN head with proposal generation and training loss (see the module docstring).

    Args:
        in_channels: channels of every input level (e.g. the FPN's `out_channels[0]`).
        feat_channels: channels of the shared convs.
        anchor_generator: anchors per level; all levels need the same anchor count.
        bbox_coder: delta coder (default: means 0, stds 1).
        num_convs: shared 3x3 convs.
        nms_pre: best anchors kept per level and image before NMS.
        max_per_img: proposals kept per image after NMS.
        iou_threshold: NMS IoU threshold.
        min_bbox_size: proposals must be larger than this (pixels) on both sides.
        nms_across_levels: one NMS over all levels instead of one per level.
        assigner, sampler: training target assignment (defaults above).
        loss_cls: objectness loss (default: sigmoid cross-entropy).
        loss_bbox: delta loss (default: L1).
    """

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        anchor_generator: AnchorGenerator,
        bbox_coder: DeltaXYWHBBoxCoder | None = None,
        num_convs: int = 1,
        nms_pre: int = 1000,
        max_per_img: int = 1000,
        iou_threshold: float = 0.7,
        min_bbox_size: float = 0.0,
        nms_across_levels: bool = False,
        assigner: MaxIoUAssigner | None = None,
        sampler: RandomSampler | None = None,
        loss_cls: nn.Module | None = None,
        loss_bbox: nn.Module | None = None,
    ) -> None:
        super().__init__()
        counts = set(anchor_generator.num_base_anchors)
        if len(counts) != 1:
            raise FormatError(
                f"RPNHead shares its convs over levels, so every level needs the same anchor count; got {anchor_generator.num_base_anchors}"
            )
        if num_convs < 1 or nms_pre < 1 or max_per_img < 1:
            raise FormatError("num_convs, nms_pre and max_per_img must be positive")
        self.num_anchors = counts.pop()
        self.anchor_generator = anchor_generator
        self.bbox_coder = bbox_coder or DeltaXYWHBBoxCoder()
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers += [
                nn.Conv2d(in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
        self.convs = nn.Sequential(*layers)
        self.cls_conv = nn.Conv2d(feat_channels, self.num_anchors, 1)
        self.reg_conv = nn.Conv2d(feat_channels, self.num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.in_channels = in_channels
        self.nms_pre = nms_pre
        self.max_per_img = max_per_img
        self.iou_threshold = iou_threshold
        self.min_bbox_size = min_bbox_size
        self.nms_across_levels = nms_across_levels
        self.assigner = assigner or MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3)
        self.sampler = sampler or RandomSampler(num=256, pos_fraction=0.5, add_gt_as_proposals=False)
        self.loss_cls = loss_cls or CrossEntropyLoss(use_sigmoid=True)
        self.loss_bbox = loss_bbox or L1Loss()

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Levels `Tensor[B, in_channels, H_l, W_l]` -> objectness `Tensor[B, A, H_l, W_l]` and deltas `Tensor[B, 4A, H_l, W_l]` per level."""
        if len(feats) != self.anchor_generator.num_levels:
            raise ShapeError(
                f"RPNHead has anchors for {self.anchor_generator.num_levels} levels, got {len(feats)} feature maps"
            )
        scores, deltas = [], []
        for i, x in enumerate(feats):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ShapeError(
                    f"RPNHead level {i} must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
                )
            h = self.convs(x)
            scores.append(self.cls_conv(h))
            deltas.append(self.reg_conv(h))
        return scores, deltas

    def _flatten(
        self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per level: logits `Tensor[B, N_l]`, deltas `Tensor[B, N_l, 4]`, anchors `Tensor[N_l, 4]`."""
        if len(cls_scores) != len(bbox_preds) or len(cls_scores) != self.anchor_generator.num_levels:
            raise ShapeError("cls_scores and bbox_preds need one map per anchor level")
        sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        anchors = self.anchor_generator.grid_anchors(
            sizes, device=cls_scores[0].device, dtype=cls_scores[0].dtype
        )
        logits = [s.permute(0, 2, 3, 1).reshape(s.shape[0], -1) for s in cls_scores]
        deltas = [d.permute(0, 2, 3, 1).reshape(d.shape[0], -1, 4) for d in bbox_preds]
        return logits, deltas, anchors

    @torch.no_grad()
    def get_proposals(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        image_sizes: Sequence[Sequence[int]] | Tensor,
    ) -> list[Tensor]:
        """Proposals of each image: `list[Tensor[P_i, 5]]` rows `x1, y1, x2, y2, score`, best first, `P_i <= max_per_img`.

        `image_sizes` is `(H, W)` per image (the unpadded size the boxes are clipped to).
        """
        logits, deltas, anchors = self._flatten(cls_scores, bbox_preds)
        batch = logits[0].shape[0]
        device = logits[0].device
        sizes = _image_sizes(image_sizes, batch, device)
        all_boxes, all_scores, all_levels = [], [], []
        for level, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
            k = min(self.nms_pre, lg.shape[1])
            top, index = lg.sigmoid().topk(k, dim=1)  # [B, k]
            picked = dl.gather(1, index[..., None].expand(-1, -1, 4))
            all_boxes.append(self.bbox_coder.decode(an[index], picked, max_shape=sizes))
            all_scores.append(top)
            all_levels.append(torch.full((k,), level, dtype=torch.long, device=device))
        boxes = torch.cat(all_boxes, dim=1).reshape(-1, 4)  # [B * N, 4]
        scores = torch.cat(all_scores, dim=1).reshape(-1)
        per_image = sum(s.shape[1] for s in all_scores)
        image = torch.arange(batch, device=device).repeat_interleave(per_image)
        levels = torch.cat(all_levels).repeat(batch)
        num_levels = 1 if self.nms_across_levels else len(logits)
        group = image * num_levels + (0 if self.nms_across_levels else levels)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        valid = (
            torch.isfinite(boxes).all(dim=1)
            & torch.isfinite(scores)
            & (w > self.min_bbox_size)
            & (h > self.min_bbox_size)
        )
        kept_rows = torch.nonzero(valid).flatten()
        keep = kept_rows[
            batched_nms_2d(boxes[kept_rows], scores[kept_rows], group[kept_rows], self.iou_threshold)
        ]
        # `keep` is in descending score over all images; a stable sort by image keeps that order
        # within each image, and the rank within the image caps the count.
        keep = keep[torch.sort(image[keep], stable=True).indices]
        counts = torch.bincount(image[keep], minlength=batch)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(keep.numel(), device=device) - starts[image[keep]]
        keep = keep[rank < self.max_per_img]
        result = torch.cat([boxes[keep], scores[keep, None]], dim=1)
        return list(result.split(counts.clamp(max=self.max_per_img).tolist()))

    def loss(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        image_sizes: Sequence[Sequence[int]] | Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """`{"loss_rpn_cls", "loss_rpn_bbox"}` for gt boxes `list[Tensor[M_i, 4]]` (one per image)."""
        logits, deltas, anchors_per_level = self._flatten(cls_scores, bbox_preds)
        batch = logits[0].shape[0]
        if len(gt_boxes) != batch:
            raise ShapeError(f"gt_boxes has {len(gt_boxes)} entries for a batch of {batch} images")
        sizes = _image_sizes(image_sizes, batch, logits[0].device)
        logit = torch.cat(logits, dim=1)  # [B, N]
        delta = torch.cat(deltas, dim=1)  # [B, N, 4]
        anchors = torch.cat(anchors_per_level)
        featmap_sizes = [tuple(s.shape[-2:]) for s in cls_scores]
        picked_logits, picked_targets, pos_deltas, pos_targets = [], [], [], []
        for b in range(batch):  # per image: assignment sizes differ between images
            valid = torch.cat(
                self.anchor_generator.valid_flags(featmap_sizes, sizes[b].tolist(), device=anchors.device)
            )
            valid_idx = torch.nonzero(valid).flatten()
            gts = gt_boxes[b].to(device=anchors.device, dtype=anchors.dtype).reshape(-1, 4)
            assigned = self.assigner.assign(anchors[valid_idx], gts)
            sampled = self.sampler.sample(assigned, anchors[valid_idx], gts, generator=generator)
            pos = valid_idx[sampled.pos_inds]
            neg = valid_idx[sampled.neg_inds]
            picked_logits.append(logit[b, torch.cat([pos, neg])])
            picked_targets.append(torch.cat([logit.new_ones(pos.numel()), logit.new_zeros(neg.numel())]))
            pos_deltas.append(delta[b, pos])
            pos_targets.append(self.bbox_coder.encode(anchors[pos], sampled.pos_gt_boxes))
        num_samples = max(sum(t.numel() for t in picked_targets), 1)
        loss_cls = self.loss_cls(torch.cat(picked_logits), torch.cat(picked_targets), avg_factor=num_samples)
        loss_bbox = self.loss_bbox(torch.cat(pos_deltas), torch.cat(pos_targets), avg_factor=num_samples)
        return {"loss_rpn_cls": loss_cls, "loss_rpn_bbox": loss_bbox}
