"""What the det2d heads share: constructor argument checks, the per-batch ground-truth label
check, the conv towers of the dense heads and their initialisation, their focal classification
loss, and the selection of the best candidates of each FPN level before NMS.

The argument and label checks are not specific to 2D detection; they are candidates for
``pc3d.nn`` once another plugin needs them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import sigmoid_focal_loss
from pc3d.nn.labels import check_labels
from pc3d_det2d.structures import Detections2D, batched_image_nms

__all__ = [
    "DenseHead2D",
    "check_inference_args",
    "check_labels",
    "conv_tower",
    "detections_from_levels",
    "init_dense_head",
    "require_at_least",
    "top_candidates",
]


def require_at_least(owner: str, minimum: int, **values: int) -> None:
    """Check integer constructor arguments against a lower bound.

    Args:
        owner: the component's name, put first in the message (``"RetinaHead"``).
        minimum: the smallest allowed value.
        **values: argument name -> value.

    Raises:
        FormatError: naming the first argument that is not an int ``>= minimum`` and its value.
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise FormatError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")


def check_inference_args(
    owner: str, score_threshold: float, iou_threshold: float, max_per_img: int, nms_pre: int | None = None
) -> None:
    """Check the inference arguments every det2d head takes.

    Args:
        owner: the component's name, put first in the message.
        score_threshold: candidates scoring above it are kept; in ``[0, 1)``.
        iou_threshold: NMS overlap threshold; in ``(0, 1]``.
        max_per_img: detections kept per image; at least 1.
        nms_pre: candidates kept per level before NMS (dense heads); at least 1.

    Raises:
        FormatError: naming the argument out of range and its value.
    """
    require_at_least(owner, 1, max_per_img=max_per_img, **({} if nms_pre is None else {"nms_pre": nms_pre}))
    if not 0.0 <= float(score_threshold) < 1.0:
        raise FormatError(f"{owner}: score_threshold must lie in [0, 1), got {score_threshold!r}")
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise FormatError(f"{owner}: iou_threshold must lie in (0, 1], got {iou_threshold!r}")


def conv_tower(in_channels: int, channels: int, count: int, group_norm: bool = False) -> nn.Sequential:
    """``count`` 3x3 convs, each followed by ReLU (RetinaNet) or by GroupNorm and ReLU (FCOS).

    Args:
        in_channels: channels of the input map.
        channels: channels of every conv.
        count: number of convs (0 gives an identity).
        group_norm: conv (no bias) -> GroupNorm(gcd(32, channels)) -> ReLU instead of conv -> ReLU.

    Returns:
        ``Tensor[B, in_channels, H, W] -> Tensor[B, channels, H, W]`` (``in_channels`` when
        ``count`` is 0).
    """
    layers: list[nn.Module] = []
    for i in range(count):
        conv = nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, bias=not group_norm)
        norm = [nn.GroupNorm(math.gcd(32, channels), channels)] if group_norm else []
        layers += [conv, *norm, nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def init_dense_head(head: nn.Module, cls_out: nn.Conv2d, prior_prob: float = 0.01) -> None:
    """RetinaNet's initialisation: every conv N(0, 0.01) with zero bias, then the class bias at
    ``-log((1 - p) / p)`` so that every location starts at probability ``p`` and the many
    negatives do not swamp the first steps of the focal loss.

    Args:
        head: the head whose convs are initialised.
        cls_out: its class logit conv.
        prior_prob: the starting probability ``p``.
    """
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.constant_(cls_out.bias, -math.log((1 - prior_prob) / prior_prob))


def top_candidates(scores: Tensor, num_classes: int, nms_pre: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``nms_pre`` best (location, class) pairs of one level, per image.

    Args:
        scores: ``Tensor[B, N * K]``, location-major (entry ``n * K + k`` is class ``k`` at
            location ``n``).
        num_classes: ``K``.
        nms_pre: how many pairs to keep per image (fewer when the level has fewer).

    Returns:
        Scores ``Tensor[B, k]`` (best first), locations ``Long[B, k]`` and classes ``Long[B, k]``.
    """
    top, index = scores.topk(min(nms_pre, scores.shape[1]), dim=1)
    return top, index // num_classes, index % num_classes


def detections_from_levels(
    boxes: Sequence[Tensor],
    scores: Sequence[Tensor],
    labels: Sequence[Tensor],
    score_threshold: float,
    num_classes: int,
    iou_threshold: float,
    max_per_img: int,
) -> list[Detections2D]:
    """Candidates of every level -> detections per image: those above ``score_threshold``,
    class-aware NMS, the ``max_per_img`` best.

    Args:
        boxes: per level ``Tensor[B, k_l, 4]`` pixel ``x1, y1, x2, y2``.
        scores: per level ``Tensor[B, k_l]``.
        labels: per level ``Long[B, k_l]``.
        score_threshold: the lowest score kept (exclusive).
        num_classes: number of classes (NMS groups per image).
        iou_threshold: NMS overlap threshold.
        max_per_img: detections kept per image.

    Returns:
        One :class:`Detections2D` per image.
    """
    batch = scores[0].shape[0]
    flat_boxes = torch.cat(list(boxes), 1).reshape(-1, 4)
    flat_scores = torch.cat(list(scores), 1).reshape(-1)
    flat_labels = torch.cat(list(labels), 1).reshape(-1)
    image = torch.arange(batch, device=flat_boxes.device).repeat_interleave(flat_scores.numel() // batch)
    keep = flat_scores > score_threshold
    return batched_image_nms(
        flat_boxes[keep],
        flat_scores[keep],
        flat_labels[keep],
        image[keep],
        batch,
        num_classes,
        iou_threshold,
        max_per_img,
    )


class DenseHead2D(nn.Module):
    """What the one-stage heads share: ``forward(feats)`` gives raw outputs per level, which
    ``loss_from_outputs(*outputs, gt_boxes, gt_labels, image_sizes)`` and ``decode(*outputs,
    image_sizes)`` take; :meth:`loss` and :meth:`predict` chain the two.

    A subclass sets ``num_classes``, ``strides``, ``focal_gamma`` and ``focal_alpha``, and its
    inference settings through :meth:`set_inference_settings`.

    Attributes:
        config_key: where configs put the head (``model.head``); a label outside
            ``num_classes`` is reported against ``<config_key>.num_classes``.
    """

    config_key: ClassVar[str] = "model.head"
    num_classes: int
    strides: tuple[int, ...]
    focal_gamma: float
    focal_alpha: float
    score_threshold: float
    nms_pre: int
    iou_threshold: float
    max_per_img: int

    def set_inference_settings(
        self, score_threshold: float, nms_pre: int, iou_threshold: float, max_per_img: int
    ) -> None:
        """Check and keep the inference settings (see :func:`check_inference_args`).

        Raises:
            FormatError: a setting out of range, named with the head and its value.
        """
        check_inference_args(type(self).__name__, score_threshold, iou_threshold, max_per_img, nms_pre)
        self.score_threshold, self.nms_pre = score_threshold, nms_pre
        self.iou_threshold, self.max_per_img = iou_threshold, max_per_img

    def check_levels(self, feats: Sequence[Tensor]) -> None:
        """Check that ``feats`` holds one FPN level per stride.

        Raises:
            ShapeError: naming both counts.
        """
        if len(feats) != len(self.strides):
            raise ShapeError(
                f"{type(self).__name__} has {len(self.strides)} levels, got {len(feats)} feature maps"
            )

    def classification_loss(self, logits: Tensor, target: Tensor, num_pos: float) -> Tensor:
        """The sigmoid focal loss of the counted locations, summed and divided by the positives.

        Args:
            logits: ``Tensor[B, N, K]`` class logits.
            target: ``Long[B, N]``: a class, ``K`` for background or -1 for not counted.
            num_pos: the number of positives (at least 1).

        Returns:
            A scalar.
        """
        counted = target >= 0
        return (
            sigmoid_focal_loss(
                logits[counted],
                target[counted],
                gamma=self.focal_gamma,
                alpha=self.focal_alpha,
                reduction="sum",
            )
            / num_pos
        )

    def loss(
        self,
        feats: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor,
    ) -> dict[str, Tensor]:
        """Training losses.

        Args:
            feats: FPN levels ``Tensor[B, C_in, H_l, W_l]``.
            gt_boxes: per image ``Tensor[M_i, 4]`` pixel ``x1, y1, x2, y2``.
            gt_labels: per image ``Long[M_i]`` in ``[0, num_classes)``.
            image_sizes: ``Long[B, 2]`` ``(h, w)`` of each image before padding.

        Returns:
            The head's losses by name (see its ``loss_from_outputs``).

        Raises:
            FormatError: a label outside ``[0, num_classes)`` (naming ``<config_key>.num_classes``).
        """
        return self.loss_from_outputs(*self(feats), gt_boxes, gt_labels, image_sizes)

    @torch.no_grad()
    def predict(self, feats: Sequence[Tensor], image_sizes: Tensor) -> list[Detections2D]:
        """Detections per image from FPN levels ``feats`` (see the head's ``decode``)."""
        return self.decode(*self(feats), image_sizes)

    def loss_from_outputs(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        """The loss of raw head outputs followed by ``gt_boxes, gt_labels, image_sizes``."""
        raise NotImplementedError

    def decode(self, *args: Any, **kwargs: Any) -> list[Detections2D]:
        """Raw head outputs followed by ``image_sizes`` -> detections per image."""
        raise NotImplementedError

    def detections(self, levels: Sequence[tuple[Tensor, Tensor, Tensor]]) -> list[Detections2D]:
        """Per-level candidates -> detections per image, with the head's inference settings.

        Args:
            levels: per level ``(boxes, scores, labels)``: ``Tensor[B, k_l, 4]`` pixel ``x1, y1, x2,
                y2``, ``Tensor[B, k_l]`` and ``Long[B, k_l]``.

        Returns:
            One :class:`Detections2D` per image (see :func:`detections_from_levels`).
        """
        boxes, scores, labels = zip(*levels)
        return detections_from_levels(
            boxes,
            scores,
            labels,
            self.score_threshold,
            self.num_classes,
            self.iou_threshold,
            self.max_per_img,
        )
