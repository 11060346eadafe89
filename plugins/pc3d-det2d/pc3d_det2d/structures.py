"""Detections of one image and the batched NMS that produces them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pc3d.ops import batched_nms_2d

__all__ = ["Detections2D", "batched_image_nms"]


@dataclass
class Detections2D:
    """Detections of one image, aligned row by row.

    Attributes:
        boxes: ``Tensor[N, 4]`` pixel ``x1, y1, x2, y2`` of the network's input image.
        scores: ``Tensor[N]``, highest first.
        labels: ``Long[N]`` contiguous class indices.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def to(self, device: torch.device | str) -> Detections2D:
        """A copy on ``device`` (the engine moves predictions with it)."""
        return Detections2D(self.boxes.to(device), self.scores.to(device), self.labels.to(device))


def batched_image_nms(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    image_index: Tensor,
    batch: int,
    num_classes: int,
    iou_threshold: float,
    max_per_img: int,
) -> list[Detections2D]:
    """Class-aware NMS of the candidates of a whole batch in one call (``pc3d.ops.batched_nms_2d``
    with one group per image and class), then the ``max_per_img`` best of each image.

    Args:
        boxes: ``Tensor[K, 4]`` pixel ``x1, y1, x2, y2``; rows with NaN or inf are dropped.
        scores: ``Tensor[K]``.
        labels: ``Long[K]`` in ``[0, num_classes)``.
        image_index: ``Long[K]`` in ``[0, batch)``.
        batch: the number of images.
        num_classes: the number of classes.
        iou_threshold: NMS overlap threshold.
        max_per_img: detections kept per image.

    Returns:
        One :class:`Detections2D` per image, best first.
    """
    device = boxes.device
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    rows = torch.nonzero(finite).flatten()
    group = image_index[rows] * num_classes + labels[rows]
    keep = rows[batched_nms_2d(boxes[rows], scores[rows], group, iou_threshold)]
    # `keep` is best first over the batch; a stable sort by image keeps that order per image.
    keep = keep[torch.sort(image_index[keep], stable=True).indices]
    counts = torch.bincount(image_index[keep], minlength=batch)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(keep.numel(), device=device) - starts[image_index[keep]]
    keep = keep[rank < max_per_img]
    sizes = counts.clamp(max=max_per_img).tolist()
    return [
        Detections2D(b, s, lab)
        for b, s, lab in zip(boxes[keep].split(sizes), scores[keep].split(sizes), labels[keep].split(sizes))
    ]
