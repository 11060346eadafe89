"""The typed sample that 3D data transforms read and write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pc3d.errors import ShapeError
from pc3d.structures import LiDARBoxes3D, LiDARPoints

__all__ = ["Sample3D"]


@dataclass
class Sample3D:
    """One LiDAR frame with its ground truth, as the augmentation pipeline sees it.

    Attributes:
        points: the point cloud (x, y, z, then features such as intensity).
        gt_boxes: ground-truth boxes (bottom centre), aligned with ``gt_labels``.
        gt_labels: ``LongTensor[M]`` class index of each box.
        frame_id: the frame's name (e.g. KITTI's ``000123``).
        extras: per-box tensors that move with the boxes when a transform drops some of them
            (e.g. ``difficulty``), keyed by name; each ``Tensor[M, ...]``.
    """

    points: LiDARPoints
    gt_boxes: LiDARBoxes3D
    gt_labels: Tensor
    frame_id: str = ""
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = len(self.gt_boxes)
        if self.gt_labels.shape != (count,):
            raise ShapeError(
                f"frame {self.frame_id!r}: {count} boxes but gt_labels has shape {tuple(self.gt_labels.shape)}"
            )
        for name, value in self.extras.items():
            if value.shape[:1] != (count,):
                raise ShapeError(
                    f"frame {self.frame_id!r}: {count} boxes but extras[{name!r}] has shape {tuple(value.shape)}"
                )

    def keep_boxes(self, mask: Tensor) -> None:
        """Keep the boxes (with their labels and extras) where ``mask`` (``BoolTensor[M]``) is set."""
        self.gt_boxes = self.gt_boxes[mask]
        self.gt_labels = self.gt_labels[mask]
        self.extras = {name: value[mask] for name, value in self.extras.items()}

    def as_batch_item(self) -> dict[str, Any]:
        """The sample as the engine's loaders collate it: one key per model argument."""
        item: dict[str, Any] = {
            "points": self.points.tensor,
            "gt_boxes": self.gt_boxes,
            "gt_labels": self.gt_labels.to(torch.long),
            "frame_id": self.frame_id,
        }
        item.update(self.extras)
        return item
