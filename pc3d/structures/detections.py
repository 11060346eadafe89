"""The detections of one LiDAR frame: the typed output of every 3D detector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.structures.lidar_box3d import LiDARBoxes3D

__all__ = ["Detections3D"]


@dataclass
class Detections3D:
    """Detections of one frame, aligned row by row.

    Attributes:
        boxes: :class:`LiDARBoxes3D` ``[N, 7]``: bottom centre ``x, y, z``, sizes ``x_size,
            y_size, z_size`` (length, width, height), yaw counter-clockwise from +x seen from
            above (pc3d's LiDAR convention, MMDetection3D 1.x's).
        scores: ``Tensor[N]`` in [0, 1], highest first.
        labels: ``Long[N]`` class indices (into the model's ``class_names``).

    Raises:
        FormatError: ``boxes`` that are not :class:`LiDARBoxes3D`.
        ShapeError: scores or labels that do not have one entry per box.
    """

    boxes: LiDARBoxes3D
    scores: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.boxes, LiDARBoxes3D):
            raise FormatError(f"Detections3D.boxes must be LiDARBoxes3D, got {type(self.boxes).__name__}")
        count = len(self.boxes)
        if tuple(self.scores.shape) != (count,) or tuple(self.labels.shape) != (count,):
            raise ShapeError(
                f"Detections3D: {count} boxes but scores {tuple(self.scores.shape)} and labels "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    def to(self, device: torch.device | str) -> Detections3D:
        """A copy on ``device`` (the engine moves predictions with it)."""
        return Detections3D(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

    def __getitem__(self, index: Tensor | slice | int) -> Detections3D:
        """The detections selected by a mask, index tensor or slice (always ``Detections3D``)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Detections3D(self.boxes[index], self.scores[index], self.labels[index])
