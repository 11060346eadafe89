"""Anchor-based 3D detection head of SECOND and PointPillars (MMDetection3D's ``Anchor3DHead``).

Three 1x1 convolutions over the neck's BEV map predict, for each of the ``A`` anchors of a cell
(:class:`pc3d.nn.anchors_3d.AnchorGenerator3D`): ``num_classes`` sigmoid logits, 7 residuals of
the 3D box coder (:class:`pc3d.nn.box_coders.DeltaXYZWLHRBBoxCoder`) and 2 direction logits. The
channel layout is MMDetection3D's (``conv_cls``: anchor-major then class; ``conv_reg``:
anchor-major then delta; ``conv_dir_cls``: anchor-major then bin), so its checkpoints load as
they are.

Training (:meth:`Anchor3DHead.loss`): each class's anchors are matched to that class's boxes by
the max-IoU assigner of the shared 2D core with the exact BEV rotated IoU as its overlap
function (``assigner.iou_calculator: rotated``, the default) or MMDetection3D's
``BboxOverlapsNearest3D`` (``nearest``: the IoU of the axis-aligned boxes nearest to the rotated
ones), with per-class thresholds, and picked by the core's
:class:`~pc3d.nn.assigners.PseudoSampler` (every positive and negative anchor, MMDetection3D's
choice for PointPillars and SECOND); focal loss on every positive and negative anchor; smooth-L1
on the positives' residuals with the yaw residual compared through ``sin(a - b)``
(``sin a cos b - cos a sin b``), so a box and its 180°-turned twin cost the same; the direction
classifier learns which of the two it is.

Inference (:meth:`Anchor3DHead.predict`): the ``nms_pre`` anchors with the best class score are
decoded, per class NMS by exact BEV IoU keeps the best, the ``max_num`` best of all classes
remain, and the direction bin restores the heading:
``yaw = limit_period(yaw - dir_offset, dir_limit_offset, π) + dir_offset + π * bin``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError, choose, did_you_mean
from pc3d.nn.assigners import MaxIoUAssigner, PseudoSampler
from pc3d.nn.box_coders import DeltaXYZWLHRBBoxCoder
from pc3d.nn.labels import check_labels
from pc3d.nn.losses import CrossEntropyLoss, FocalLoss, SmoothL1Loss
from pc3d.ops import batched_nms_bev, box_iou_bev
from pc3d.ops.iou_2d import bbox_overlaps
from pc3d.structures import LiDARBoxes3D, limit_period
from pc3d_det3d.mmdet3d_compat import build_anchor_generator
from pc3d_det3d.structures import Detections3D

__all__ = ["Anchor3DHead", "AnchorHeadOutput", "AnchorTestSettings"]


class AnchorHeadOutput(NamedTuple):
    """Raw head output over the head's BEV map.

    Attributes:
        cls_score: ``Tensor[B, A * num_classes, H, W]`` logits.
        bbox_pred: ``Tensor[B, A * 7, H, W]`` box residuals.
        dir_cls_pred: ``Tensor[B, A * 2, H, W]`` direction logits.
    """

    cls_score: Tensor
    bbox_pred: Tensor
    dir_cls_pred: Tensor


@dataclass(frozen=True)
class AnchorTestSettings:
    """Post-processing of :class:`Anchor3DHead` (MMDetection3D's ``test_cfg`` keys).

    Attributes:
        nms_pre: anchors kept (by best class score) before decoding; <= 0 keeps all.
        score_thr: a box takes part in its class's NMS when its score is above this.
        nms_thr: BEV IoU above which a lower-scored box of the same class is suppressed.
        max_num: detections kept per sample, best first.
        use_rotate_nms: must be true: pc3d's NMS uses the exact rotated BEV IoU.
    """

    nms_pre: int = 100
    score_thr: float = 0.1
    nms_thr: float = 0.01
    max_num: int = 50
    use_rotate_nms: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str) -> AnchorTestSettings:
        values = dict(values or {})
        known = [f.name for f in fields(cls)]
        for key in values:
            if key not in known:
                raise FormatError(
                    f"{where}: unknown key {key!r}{did_you_mean(key, known)}; known: {', '.join(known)}"
                )
        settings = cls(**values)
        if not settings.use_rotate_nms:
            raise FormatError(f"{where}.use_rotate_nms: only rotated BEV NMS is implemented (set it to true)")
        if not 0.0 <= settings.nms_thr <= 1.0:
            raise FormatError(f"{where}.nms_thr must be in [0, 1], got {settings.nms_thr}")
        if settings.max_num < 1:
            raise FormatError(f"{where}.max_num must be at least 1, got {settings.max_num}")
        return settings


def _bev_iou(gt_boxes: Tensor, anchors: Tensor) -> Tensor:
    """Exact BEV IoU ``[M, N]`` of ground truth and anchors, computed only for the anchors that
    can touch a box (centres closer than the two half-diagonals): a frame's few boxes meet a few
    hundred of its tens of thousands of anchors, and every other pair is 0."""
    out = anchors.new_zeros((gt_boxes.shape[0], anchors.shape[0]))
    if gt_boxes.shape[0] == 0 or anchors.shape[0] == 0:
        return out
    # Every anchor's half-diagonal bounded by the largest (one size per class): one distance
    # matrix and one comparison, with a millimetre of slack for cdist's rounding (a pair that far
    # apart overlaps 0 anyway).
    reach = 0.5 * (
        torch.hypot(gt_boxes[:, 3], gt_boxes[:, 4]) + torch.hypot(anchors[:, 3], anchors[:, 4]).max()
    )
    near = torch.cdist(gt_boxes[:, :2], anchors[:, :2]) < (reach + 1e-3)[:, None]
    gt, anchor = torch.nonzero(near, as_tuple=True)
    if gt.numel():
        # The listed pairs only, aligned: no second search for candidates.
        out[gt, anchor] = box_iou_bev(gt_boxes[gt], anchors[anchor], aligned=True).to(out.dtype)
    return out


def _nearest_bev_iou(gt_boxes: Tensor, anchors: Tensor) -> Tensor:
    """MMDetection3D's ``BboxOverlapsNearest3D``: the IoU ``[M, N]`` of the axis-aligned BEV boxes
    nearest to the rotated ones (:attr:`pc3d.structures.BaseBoxes3D.nearest_bev`)."""
    return bbox_overlaps(LiDARBoxes3D(gt_boxes).nearest_bev, LiDARBoxes3D(anchors).nearest_bev)


#: ``assigner.iou_calculator`` -> the overlap the max-IoU assigner uses.
IOU_CALCULATORS = {"rotated": _bev_iou, "nearest": _nearest_bev_iou}


def _at_least_one(value: int, key: str) -> int:
    if int(value) < 1:
        raise FormatError(f"model.bbox_head.{key} must be at least 1, got {value!r}")
    return int(value)


def _sin_difference(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Replace the yaw columns by ``sin(p) cos(t)`` and ``cos(p) sin(t)``: their difference is
    ``sin(p - t)``, zero for a box and its turned twin."""
    sin_pred = torch.sin(pred[..., 6:7]) * torch.cos(target[..., 6:7])
    sin_target = torch.cos(pred[..., 6:7]) * torch.sin(target[..., 6:7])
    return (
        torch.cat([pred[..., :6], sin_pred, pred[..., 7:]], dim=-1),
        torch.cat([target[..., :6], sin_target, target[..., 7:]], dim=-1),
    )


class Anchor3DHead(nn.Module):
    """Anchor-based 3D head (see the module docstring).

    ``num_classes`` and ``in_channels`` may be left out: :class:`~pc3d_det3d.voxelnet.VoxelDetector`
    derives them (``len(class_names)`` and its neck's output channels) and calls :meth:`complete`,
    which builds the layers. A head given both is complete when constructed.

    Args:
        num_classes: number of classes; one anchor size (and range) per class. Default: the
            detector's ``len(class_names)``.
        in_channels: channels of the BEV map the head reads (e.g. 384 after SECOND FPN). Default:
            the detector's neck's output channels.
        anchor_generator: ``ranges``, ``sizes``, ``rotations`` (and optional ``align_corner``) of
            :class:`~pc3d.nn.anchors_3d.AnchorGenerator3D`, and optionally ``generator``:
            MMDetection3D's generator name (see :mod:`pc3d_det3d.mmdet3d_compat`).
        assigner: per-class IoU thresholds, one mapping per class with ``pos_iou_thr``,
            ``neg_iou_thr``, ``min_pos_iou`` and optionally ``iou_calculator`` (``rotated``, the
            default, or ``nearest``; see the module docstring), or one mapping shared by all
            classes.
        loss_cls: focal loss settings (``gamma``, ``alpha``, ``loss_weight``).
        loss_bbox: smooth-L1 settings (``beta``, ``loss_weight``).
        loss_dir: direction cross-entropy settings (``loss_weight``).
        test_cfg: post-processing, see :class:`AnchorTestSettings`.
        dir_offset: heading offset of the direction bins (MMDetection3D 1.x: ``-π/2``).
        dir_limit_offset: lower end of the bins' period, in periods.
        diff_rad_by_sin: compare yaw residuals through ``sin`` in the box loss.
    """

    num_classes: int
    in_channels: int

    def __init__(
        self,
        num_classes: int | None = None,
        in_channels: int | None = None,
        *,
        anchor_generator: Mapping[str, Any],
        assigner: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        loss_cls: Mapping[str, Any] | None = None,
        loss_bbox: Mapping[str, Any] | None = None,
        loss_dir: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        dir_offset: float = -math.pi / 2,
        dir_limit_offset: float = 0.0,
        diff_rad_by_sin: bool = True,
    ) -> None:
        super().__init__()
        # Given values are attributes at once (the detector checks them against what it derives);
        # left-out ones appear when complete() builds the layers.
        if num_classes is not None:
            self.num_classes = _at_least_one(num_classes, "num_classes")
        if in_channels is not None:
            self.in_channels = _at_least_one(in_channels, "in_channels")
        # Where the class count comes from, for the messages of the per-class lists.
        self.classes_key = "model.bbox_head.num_classes" if num_classes is not None else "model.class_names"
        # Used through the anchor interface shared with the 2D heads (pc3d.nn.AnchorGeneratorLike:
        # num_levels, num_base_anchors, grid_anchors), plus the 3D generator's sizes and rotations.
        self.anchor_generator = build_anchor_generator(anchor_generator)
        if self.anchor_generator.num_levels != 1:
            raise FormatError(
                f"model.bbox_head.anchor_generator has {self.anchor_generator.num_levels} levels (scales), "
                "but Anchor3DHead reads one BEV map: give one scale"
            )
        self.num_anchors = self.anchor_generator.num_base_anchors[0]
        self.num_rotations = len(self.anchor_generator.rotations)
        self.box_coder = DeltaXYZWLHRBBoxCoder()
        self.assigner_settings = assigner
        self.assigners: list[MaxIoUAssigner] = []
        self.sampler = PseudoSampler()
        self.loss_cls = FocalLoss(**dict(loss_cls or {"gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}))
        self.loss_bbox = SmoothL1Loss(**dict(loss_bbox or {"beta": 1.0 / 9.0, "loss_weight": 2.0}))
        self.loss_dir = CrossEntropyLoss(**dict(loss_dir or {"loss_weight": 0.2}))
        self.test_cfg = AnchorTestSettings.from_mapping(test_cfg, "model.bbox_head.test_cfg")
        self.dir_offset = float(dir_offset)
        self.dir_limit_offset = float(dir_limit_offset)
        self.diff_rad_by_sin = bool(diff_rad_by_sin)
        # At inference without autograd (set by pc3d.nn.fuse.optimize_for_inference):
        # predict_features computes the box and direction channels only at the nms_pre anchors
        # the class scores select, not over the whole map.
        self.regress_candidates_only = False
        if num_classes is not None and in_channels is not None:
            self.complete(num_classes, in_channels)

    @property
    def is_complete(self) -> bool:
        """Whether the layers are built (the class and channel counts are known)."""
        return "conv_cls" in self._modules

    def complete(self, num_classes: int, in_channels: int) -> None:
        """Build the layers for ``num_classes`` classes over a map of ``in_channels`` channels.

        :class:`~pc3d_det3d.voxelnet.VoxelDetector` calls it with the counts it derives; on a
        complete head it only checks that they are the head's.

        Raises:
            FormatError: a count differs from the one the head was given, a count below 1, or
                anchor sizes or assigner entries that are not one per class.
        """
        for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            given = self.__dict__.get(key)
            if given is not None and given != value:
                raise FormatError(f"model.bbox_head.{key} is {given} but the detector gives the head {value}")
        if self.is_complete:
            return
        self.num_classes = _at_least_one(num_classes, "num_classes")
        self.in_channels = _at_least_one(in_channels, "in_channels")
        if len(self.anchor_generator.sizes) != self.num_classes:
            raise FormatError(
                f"model.bbox_head.anchor_generator.sizes has {len(self.anchor_generator.sizes)} sizes for "
                f"{self.num_classes} classes ({self.classes_key}): give one anchor size per class"
            )
        self.assigners = self._build_assigners(self.assigner_settings)
        self.conv_cls = nn.Conv2d(self.in_channels, self.num_anchors * self.num_classes, 1)
        self.conv_reg = nn.Conv2d(self.in_channels, self.num_anchors * self.box_coder.code_size, 1)
        self.conv_dir_cls = nn.Conv2d(self.in_channels, self.num_anchors * 2, 1)
        self.init_weights()

    def _build_assigners(
        self, assigner: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
    ) -> list[MaxIoUAssigner]:
        default = {"pos_iou_thr": 0.6, "neg_iou_thr": 0.45, "min_pos_iou": 0.45}
        settings = (
            [assigner or default] * self.num_classes if not isinstance(assigner, Sequence) else list(assigner)
        )
        if len(settings) != self.num_classes:
            raise FormatError(
                f"model.bbox_head.assigner has {len(settings)} entries for {self.num_classes} classes "
                f"({self.classes_key}): give one per class, or a single mapping"
            )
        assigners = []
        for i, setting in enumerate(settings):
            options = dict(setting)
            name = str(options.pop("iou_calculator", "rotated"))
            where = f"model.bbox_head.assigner[{i}].iou_calculator"
            overlap = choose(IOU_CALCULATORS, name, where, "overlap")
            assigners.append(MaxIoUAssigner(**options, iou_calculator=overlap))
        return assigners

    def init_weights(self) -> None:
        """Normal(0, 0.01) weights; class biases start at a 1 % foreground prior (focal loss)."""
        for conv in (self.conv_cls, self.conv_reg, self.conv_dir_cls):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, features: Tensor | Sequence[Tensor]) -> AnchorHeadOutput:
        """Raw predictions from ``Tensor[B, in_channels, H, W]`` (or a one-level list of it)."""
        if not isinstance(features, Tensor):
            if len(features) != 1:
                raise ShapeError(f"Anchor3DHead reads one BEV map, got {len(features)} levels")
            features = features[0]
        if not self.is_complete:
            raise FormatError(
                "Anchor3DHead has no layers yet: give it num_classes and in_channels, or build it as "
                "a VoxelDetector's bbox_head, which derives them"
            )
        # The three 1x1 convs as one: a single pass over the map (forward and backward) instead of
        # three. The modules stay separate so checkpoints keep MMDetection3D's names.
        convs = (self.conv_cls, self.conv_reg, self.conv_dir_cls)
        weight = torch.cat([conv.weight for conv in convs])
        bias = torch.cat([conv.bias for conv in convs])  # type: ignore[misc]  # built with biases
        if self.conv_cls.weight.is_contiguous(memory_format=torch.channels_last):
            weight = weight.contiguous(memory_format=torch.channels_last)
        out = nn.functional.conv2d(features, weight, bias)
        cls, reg = self.conv_cls.out_channels, self.conv_reg.out_channels
        return AnchorHeadOutput(out[:, :cls], out[:, cls : cls + reg], out[:, cls + reg :])

    def anchors(self, output: AnchorHeadOutput) -> Tensor:
        """The anchors of the output's map, ``Tensor[H * W * A, 7]`` on its device.

        Computed once per map size and device and then reused: building the ~320k anchors of a
        KITTI map costs more than the rest of the post-processing. Treat the result as read-only.
        """
        return self._grid_anchors(output.cls_score)

    def _grid_anchors(self, score_map: Tensor) -> Tensor:
        """The anchors of a ``[B, *, H, W]`` map, cached per size and device (see :meth:`anchors`)."""
        key = (*score_map.shape[-2:], str(score_map.device))
        cache: dict[tuple[Any, ...], Tensor] = self.__dict__.setdefault("_anchor_cache", {})
        if key not in cache:
            cache.clear()  # one map size at a time is what a detector sees
            cache[key] = self.anchor_generator.grid_anchors([tuple(score_map.shape[-2:])], score_map.device)[
                0
            ]
        return cache[key]

    # -- training ----------------------------------------------------------------------------

    def _flat(self, output: AnchorHeadOutput) -> tuple[Tensor, Tensor, Tensor]:
        batch = output.cls_score.shape[0]
        cls = output.cls_score.permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
        reg = output.bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, self.box_coder.code_size)
        direction = output.dir_cls_pred.permute(0, 2, 3, 1).reshape(batch, -1, 2)
        return cls, reg, direction

    def _direction_bins(self, yaw: Tensor) -> Tensor:
        shifted = limit_period(yaw - self.dir_offset, self.dir_limit_offset, 2 * math.pi)
        return torch.div(shifted, math.pi, rounding_mode="floor").long().clamp(0, 1)

    def _targets(self, anchors: Tensor, gt_boxes: Tensor, gt_labels: Tensor) -> dict[str, Tensor]:
        """Per-anchor targets of one sample: labels (``num_classes`` = background), label
        weights (0 = ignored), box residuals, positive mask and direction bins."""
        num = anchors.shape[0]
        labels = torch.full((num,), self.num_classes, dtype=torch.long, device=anchors.device)
        weights = torch.zeros(num, device=anchors.device)
        positive = torch.zeros(num, dtype=torch.bool, device=anchors.device)
        matched = torch.zeros_like(anchors)
        # Anchor k of a location has size (= class) k // num_rotations.
        anchor_class = (torch.arange(num, device=anchors.device) % self.num_anchors) // self.num_rotations
        for cls, assigner in enumerate(self.assigners):
            index = torch.nonzero(anchor_class == cls).squeeze(1)
            boxes = gt_boxes[gt_labels == cls]
            class_anchors = anchors[index]
            picked = self.sampler.sample(assigner.assign(class_anchors, boxes), class_anchors, boxes)
            pos = index[picked.pos_inds]
            weights[index[torch.cat([picked.pos_inds, picked.neg_inds])]] = 1.0
            positive[pos] = True
            labels[pos] = cls
            matched[pos] = picked.pos_gt_boxes
        residuals = self.box_coder.encode(anchors[positive], matched[positive])
        return {
            "labels": labels,
            "label_weights": weights,
            "positive": positive,
            "residuals": residuals,
            "dir_bins": self._direction_bins(matched[positive][:, 6]),
        }

    def loss(
        self, output: AnchorHeadOutput, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """Focal, box and direction losses, averaged over the batch's positive anchors.

        Args:
            output: the head's raw output for the batch.
            gt_boxes: per sample ``Tensor[M_i, 7]`` LiDAR boxes (bottom centre).
            gt_labels: per sample ``LongTensor[M_i]`` in ``[0, num_classes)``.

        Returns:
            ``loss_cls``, ``loss_bbox``, ``loss_dir`` and their sum ``loss``.
        """
        cls, reg, direction = self._flat(output)
        if len(gt_boxes) != cls.shape[0] or len(gt_labels) != cls.shape[0]:
            raise ShapeError(
                f"got {len(gt_boxes)} box sets and {len(gt_labels)} label sets for a batch of {cls.shape[0]}"
            )
        anchors = self.anchors(output)
        targets = [
            self._targets(anchors, boxes.to(anchors).reshape(-1, 7), self._checked(labels, anchors.device))
            for boxes, labels in zip(gt_boxes, gt_labels)
        ]
        labels = torch.cat([t["labels"] for t in targets])
        positive = torch.cat([t["positive"] for t in targets])
        num_pos = max(int(positive.sum()), 1)
        loss_cls = self.loss_cls(
            cls.reshape(-1, self.num_classes),
            labels,
            torch.cat([t["label_weights"] for t in targets]),
            avg_factor=num_pos,
        )
        pos_reg = reg.reshape(-1, reg.shape[-1])[positive]
        residuals = torch.cat([t["residuals"] for t in targets])
        if self.diff_rad_by_sin:
            pos_reg, residuals = _sin_difference(pos_reg, residuals)
        loss_bbox = (
            self.loss_bbox(pos_reg, residuals, avg_factor=num_pos) if pos_reg.numel() else reg.sum() * 0
        )
        pos_dir = direction.reshape(-1, 2)[positive]
        bins = torch.cat([t["dir_bins"] for t in targets])
        loss_dir = self.loss_dir(pos_dir, bins, avg_factor=num_pos) if bins.numel() else direction.sum() * 0
        return {
            "loss_cls": loss_cls,
            "loss_bbox": loss_bbox,
            "loss_dir": loss_dir,
            "loss": loss_cls + loss_bbox + loss_dir,
        }

    def _checked(self, labels: Tensor, device: torch.device) -> Tensor:
        labels = labels.to(device=device, dtype=torch.long).reshape(-1)
        check_labels(labels, self.num_classes, self.classes_key)
        return labels

    # -- inference ---------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, output: AnchorHeadOutput, score_thr: float | None = None) -> list[Detections3D]:
        """Detections per sample: LiDAR boxes (bottom centre), scores and labels, best first.

        Args:
            output: the head's raw output for the batch.
            score_thr: overrides ``test_cfg.score_thr`` when given.
        """
        cls, reg, direction = self._flat(output)
        anchors = self.anchors(output)
        threshold = self.test_cfg.score_thr if score_thr is None else float(score_thr)
        return [self._predict_one(anchors, c, r, d, threshold) for c, r, d in zip(cls, reg, direction)]

    def predict_features(
        self, features: Tensor | Sequence[Tensor], score_thr: float | None = None
    ) -> list[Detections3D]:
        """Detections per sample straight from the neck's map: :meth:`predict` of :meth:`forward`.

        With ``regress_candidates_only`` (the inference copy) and no autograd, only the class
        channels are computed over the whole map; the box and direction channels only at the
        ``nms_pre`` anchors those scores select (the same numbers to float rounding, a quarter of
        the head's arithmetic for KITTI's 3 classes).
        """
        if not (self.regress_candidates_only and not torch.is_grad_enabled() and 0 < self.test_cfg.nms_pre):
            return self.predict(self(features), score_thr)
        if not isinstance(features, Tensor):
            if len(features) != 1:
                return self.predict(self(features), score_thr)  # forward names the problem
            features = features[0]
        score_map = nn.functional.conv2d(features, self.conv_cls.weight, self.conv_cls.bias)
        anchors = self._grid_anchors(score_map)
        threshold = self.test_cfg.score_thr if score_thr is None else float(score_thr)
        batch, channels = features.shape[:2]
        cls = score_map.permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes)
        code = self.box_coder.code_size
        # [A, outputs, C] views of the 1x1 weights: anchor a's rows of each conv.
        reg_weight = self.conv_reg.weight.reshape(self.num_anchors, code, channels)
        dir_weight = self.conv_dir_cls.weight.reshape(self.num_anchors, 2, channels)
        reg_bias = self.conv_reg.bias.reshape(self.num_anchors, code)  # type: ignore[union-attr]
        dir_bias = self.conv_dir_cls.bias.reshape(self.num_anchors, 2)  # type: ignore[union-attr]
        if self.test_cfg.nms_pre >= cls.shape[1]:  # every anchor is a candidate: the dense path
            return self.predict(self(features), score_thr)
        results = []
        for sample in range(batch):  # the frames of a batch (a handful), not anchors
            scores = cls[sample].sigmoid()
            top = self._top_anchors(scores)
            assert top is not None  # 0 < nms_pre < anchors, checked above
            pixel, slot = top // self.num_anchors, top % self.num_anchors
            at = features[sample].permute(1, 2, 0).reshape(-1, channels)[pixel]  # [K, C]
            reg = torch.einsum("kc,koc->ko", at, reg_weight[slot]) + reg_bias[slot]
            direction = torch.einsum("kc,koc->ko", at, dir_weight[slot]) + dir_bias[slot]
            results.append(
                self._decode_candidates(anchors[top], reg, scores[top], direction.argmax(dim=-1), threshold)
            )
        return results

    def _top_anchors(self, scores: Tensor) -> Tensor | None:
        """The ``nms_pre`` anchors with the best class score, or None when all take part."""
        if 0 < self.test_cfg.nms_pre < scores.shape[0]:
            return scores.max(dim=1).values.topk(self.test_cfg.nms_pre).indices
        return None

    def _predict_one(
        self, anchors: Tensor, cls: Tensor, reg: Tensor, direction: Tensor, score_thr: float
    ) -> Detections3D:
        scores = cls.sigmoid()
        bins = direction.argmax(dim=-1)
        top = self._top_anchors(scores)
        if top is not None:
            anchors, reg, scores, bins = anchors[top], reg[top], scores[top], bins[top]
        return self._decode_candidates(anchors, reg, scores, bins, score_thr)

    def _decode_candidates(
        self, anchors: Tensor, reg: Tensor, scores: Tensor, bins: Tensor, score_thr: float
    ) -> Detections3D:
        """Decode, threshold, per-class NMS and heading of one sample's candidate anchors."""
        cfg = self.test_cfg
        boxes = self.box_coder.decode(anchors, reg)
        # Every (box, class) pair above the threshold is a candidate of that class.
        box_index, labels = torch.nonzero(scores > score_thr, as_tuple=True)
        candidate_scores = scores[box_index, labels]
        keep = batched_nms_bev(boxes[box_index], candidate_scores, labels, cfg.nms_thr)
        keep = keep[candidate_scores[keep].argsort(descending=True, stable=True)][: cfg.max_num]
        chosen = box_index[keep]
        result = boxes[chosen].clone()
        if result.shape[0]:
            yaw = limit_period(result[:, 6] - self.dir_offset, self.dir_limit_offset, math.pi)
            result[:, 6] = yaw + self.dir_offset + math.pi * bins[chosen].to(result.dtype)
        return Detections3D(boxes=LiDARBoxes3D(result), scores=candidate_scores[keep], labels=labels[keep])
