"""A single-level, anchor-free FCOS head (no FPN): per feature-map location, class scores, the
distances to the four box edges and a centerness score.

Boxes are ``Tensor[M, 4]`` pixel ``x1, y1, x2, y2`` with ``x1 < x2``, ``y1 < y2``. A location
``(i, j)`` of a stride-``s`` map sits at pixel ``((j + 0.5) * s, (i + 0.5) * s)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import batched_nms_2d

# Keeps exp() finite while an untrained head outputs large values (e^8 * stride pixels).
_MAX_LOG_DISTANCE = 8.0


class FCOSOutput(NamedTuple):
    """:ivar cls_logits: ``Tensor[B, K, H, W]``.
    :ivar box_ltrb: ``Tensor[B, 4, H, W]`` distances (pixels, > 0) to the left, top, right and
        bottom box edges.
    :ivar centerness: ``Tensor[B, 1, H, W]`` logits."""

    cls_logits: Tensor
    box_ltrb: Tensor
    centerness: Tensor


@dataclass
class Detections2D:
    """Detections of one image: ``boxes`` ``Tensor[N, 4]`` pixel x1, y1, x2, y2; ``scores``
    ``Tensor[N]`` (highest first); ``labels`` ``Long[N]``."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True)
class FCOSTargets:
    """Per location (flattened ``H * W``): ``labels`` ``Long[B, HW]`` (-1: background),
    ``box_ltrb`` ``Tensor[B, HW, 4]`` and ``centerness`` ``Tensor[B, HW]`` (0 at background)."""

    labels: Tensor
    box_ltrb: Tensor
    centerness: Tensor


def location_centres(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """``Tensor[H * W, 2]`` pixel (x, y) of each location, row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)


def assign_fcos_targets(
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    feature_shape: tuple[int, int],
    stride: int,
    num_classes: int,
) -> FCOSTargets:
    """FCOS assignment on one level: a location inside a box is a positive of that box; inside
    several, of the smallest. Vectorised over the batch, locations and boxes (boxes are padded
    to the largest count)."""
    if len(gt_boxes) != len(gt_labels):
        raise ShapeError(f"{len(gt_boxes)} box tensors but {len(gt_labels)} label tensors")
    batch = len(gt_boxes)
    height, width = feature_shape
    device = gt_boxes[0].device if batch else torch.device("cpu")
    most = max((len(b) for b in gt_boxes), default=0)
    boxes = torch.zeros(batch, most, 4, device=device)
    labels = torch.full((batch, most), -1, dtype=torch.long, device=device)
    for index, (sample_boxes, sample_labels) in enumerate(zip(gt_boxes, gt_labels)):
        if sample_boxes.ndim != 2 or sample_boxes.shape[1] != 4:
            raise ShapeError(f"gt_boxes[{index}]: expected Tensor[M, 4], got {tuple(sample_boxes.shape)}")
        if sample_labels.shape != (len(sample_boxes),):
            raise ShapeError(
                f"gt_labels[{index}]: expected Long[{len(sample_boxes)}], got {tuple(sample_labels.shape)}"
            )
        if not bool(torch.isfinite(sample_boxes).all()) or bool(
            (sample_boxes[:, 2:] <= sample_boxes[:, :2]).any()
        ):
            raise FormatError(f"gt_boxes[{index}]: every box needs finite x1 < x2 and y1 < y2")
        if bool(((sample_labels < 0) | (sample_labels >= num_classes)).any()):
            raise FormatError(f"gt_labels[{index}] must lie in [0, {num_classes})")
        boxes[index, : len(sample_boxes)] = sample_boxes.float()
        labels[index, : len(sample_labels)] = sample_labels.long()

    if most == 0:  # no objects anywhere in the batch: every location is background
        return FCOSTargets(
            torch.full((batch, height * width), -1, dtype=torch.long, device=device),
            torch.zeros(batch, height * width, 4, device=device),
            torch.zeros(batch, height * width, device=device),
        )
    centres = location_centres(height, width, stride, device)  # [HW, 2]
    x, y = centres[None, :, None, 0], centres[None, :, None, 1]
    ltrb = torch.stack(
        [
            x - boxes[:, None, :, 0],
            y - boxes[:, None, :, 1],
            boxes[:, None, :, 2] - x,
            boxes[:, None, :, 3] - y,
        ],
        dim=-1,
    )  # [B, HW, M, 4]
    inside = (ltrb.min(dim=-1).values > 0) & (labels >= 0)[:, None, :]
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[:, None, :]
    area = torch.where(inside, area, torch.full_like(area, math.inf))
    smallest, owner = area.min(dim=-1)  # [B, HW]
    positive = torch.isfinite(smallest)
    target_labels = torch.where(positive, labels.gather(1, owner), -1)
    target_ltrb = ltrb.gather(2, owner[..., None, None].expand(-1, -1, 1, 4)).squeeze(2)
    target_ltrb = target_ltrb * positive[..., None]
    left_right = target_ltrb[..., [0, 2]]
    top_bottom = target_ltrb[..., [1, 3]]
    centerness = torch.sqrt(
        (left_right.min(-1).values / left_right.max(-1).values.clamp(min=1e-6))
        * (top_bottom.min(-1).values / top_bottom.max(-1).values.clamp(min=1e-6))
    )
    centerness = torch.where(positive, centerness, torch.zeros_like(centerness))
    return FCOSTargets(target_labels, target_ltrb, centerness)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """RetinaNet's focal loss, elementwise (same shape as ``logits``)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * ce * (1 - p_t) ** gamma


def giou_loss_ltrb(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - GIoU`` of boxes given as distances from one shared point, ``Tensor[N, 4]`` each."""
    pred_area = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    target_area = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    inter_w = torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 2], target[:, 2])
    inter_h = torch.minimum(pred[:, 1], target[:, 1]) + torch.minimum(pred[:, 3], target[:, 3])
    inter = inter_w.clamp(min=0) * inter_h.clamp(min=0)
    union = (pred_area + target_area - inter).clamp(min=1e-6)
    enclose_w = torch.maximum(pred[:, 0], target[:, 0]) + torch.maximum(pred[:, 2], target[:, 2])
    enclose_h = torch.maximum(pred[:, 1], target[:, 1]) + torch.maximum(pred[:, 3], target[:, 3])
    enclose = (enclose_w * enclose_h).clamp(min=1e-6)
    return 1 - (inter / union - (enclose - union) / enclose)


def _tower(in_channels: int, channels: int, num_convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(num_convs):
        layers += [
            nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1, bias=False),
            # GroupNorm as in FCOS; 8 groups where the width allows, else LayerNorm-like 1 group.
            nn.GroupNorm(8 if channels % 8 == 0 else 1, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class SingleLevelFCOSHead(nn.Module):
    """FCOS on one feature map: a classification tower and a box tower, then 3x3 output
    convs for class logits, edge distances (``exp(scale * x) * stride``) and centerness (from the
    box tower).

    :param in_channels: channels of the feature map.
    :param num_classes: number of object classes (no background class: sigmoid per class).
    :param stride: the feature map's stride in pixels (the backbone's ``out_stride``).
    :param feat_channels: width of the towers.
    :param num_convs: convs per tower.
    :param focal_alpha: focal loss alpha.
    :param focal_gamma: focal loss gamma.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stride: int,
        feat_channels: int = 64,
        num_convs: int = 2,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        if num_classes < 1 or stride < 1:
            raise ValueError(f"num_classes ({num_classes}) and stride ({stride}) must be >= 1")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stride = stride
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.cls_tower = _tower(in_channels, feat_channels, num_convs)
        self.box_tower = _tower(in_channels, feat_channels, num_convs)
        tower_out = feat_channels if num_convs else in_channels
        self.cls_out = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.box_out = nn.Conv2d(tower_out, 4, 3, padding=1)
        self.centerness_out = nn.Conv2d(tower_out, 1, 3, padding=1)
        self.scale = nn.Parameter(torch.tensor(1.0))
        # RetinaNet's prior: every location starts at probability 0.01 of being an object.
        nn.init.constant_(self.cls_out.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, features: Tensor) -> FCOSOutput:
        """``Tensor[B, in_channels, H, W]`` -> :class:`FCOSOutput` over the same ``H, W``."""
        box_features = self.box_tower(features)
        distances = torch.exp((self.scale * self.box_out(box_features)).clamp(max=_MAX_LOG_DISTANCE))
        return FCOSOutput(
            self.cls_out(self.cls_tower(features)),
            distances * self.stride,
            self.centerness_out(box_features),
        )

    def loss(
        self, output: FCOSOutput, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """Focal classification loss over all locations, centerness-weighted GIoU box loss and
        centerness BCE over positives (FCOS). :returns: the three and their sum ``loss``."""
        batch, num_classes, height, width = output.cls_logits.shape
        if num_classes != self.num_classes or len(gt_boxes) != batch:
            raise ShapeError(
                f"cls_logits {tuple(output.cls_logits.shape)} for {len(gt_boxes)} images and "
                f"{self.num_classes} classes"
            )
        targets = assign_fcos_targets(gt_boxes, gt_labels, (height, width), self.stride, num_classes)
        cls_logits = output.cls_logits.flatten(2).transpose(1, 2)  # [B, HW, K]
        positive = targets.labels >= 0
        one_hot = F.one_hot(targets.labels.clamp(min=0), num_classes).to(cls_logits)
        one_hot = one_hot * positive[..., None]
        num_positive = positive.sum().clamp(min=1)
        loss_cls = sigmoid_focal_loss(cls_logits, one_hot, self.focal_alpha, self.focal_gamma).sum()
        loss_cls = loss_cls / num_positive
        pred_ltrb = output.box_ltrb.flatten(2).transpose(1, 2)[positive]  # [P, 4]
        weights = targets.centerness[positive]
        giou = giou_loss_ltrb(pred_ltrb, targets.box_ltrb[positive])
        loss_box = (giou * weights).sum() / weights.sum().clamp(min=1e-6)
        centerness_logits = output.centerness.flatten(1)[positive]
        loss_centerness = F.binary_cross_entropy_with_logits(
            centerness_logits, weights, reduction="sum"
        ) / num_positive
        return {
            "loss_cls": loss_cls,
            "loss_box": loss_box,
            "loss_centerness": loss_centerness,
            "loss": loss_cls + loss_box + loss_centerness,
        }

    def predict(
        self,
        output: FCOSOutput,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.6,
        pre_max: int = 1000,
        max_detections: int = 100,
    ) -> list[Detections2D]:
        """Boxes per image: score = sqrt(class probability * centerness) (FCOS), the
        ``pre_max`` best (location, class) pairs, then class-aware NMS
        (:func:`pc3d.ops.batched_nms_2d`) keeping scores above ``score_threshold``."""
        batch, num_classes, height, width = output.cls_logits.shape
        scores = (output.cls_logits.sigmoid() * output.centerness.sigmoid()).sqrt().flatten(1)
        top_scores, top_index = scores.topk(min(pre_max, scores.shape[1]), dim=1)  # [B, k]
        labels = top_index // (height * width)
        location = top_index % (height * width)
        centres = location_centres(height, width, self.stride, scores.device)[location]  # [B, k, 2]
        ltrb = output.box_ltrb.flatten(2).gather(2, location[:, None].expand(-1, 4, -1))
        ltrb = ltrb.transpose(1, 2)  # [B, k, 4]
        boxes = torch.cat([centres - ltrb[..., :2], centres + ltrb[..., 2:]], dim=-1)
        results = []
        for image in range(batch):  # NMS is per image; everything inside it is vectorised
            keep = batched_nms_2d(
                boxes[image], top_scores[image], labels[image], iou_threshold,
                score_threshold=score_threshold, post_max=max_detections,
            )
            results.append(Detections2D(boxes[image][keep], top_scores[image][keep], labels[image][keep]))
        return results
