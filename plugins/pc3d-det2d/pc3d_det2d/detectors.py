"""2D detectors assembled from registered parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d_det2d.heads import Detections2D, FCOSOutput, SingleLevelFCOSHead


class SingleStageDetector2D(nn.Module):
    """Backbone (one feature map) -> single-level FCOS head.

    :param backbone: a module with ``out_channels`` and ``out_stride``.
    :param head: its ``in_channels`` and ``stride`` must match the backbone's.
    """

    def __init__(self, backbone: nn.Module, head: SingleLevelFCOSHead) -> None:
        super().__init__()
        if getattr(backbone, "out_channels", None) != head.in_channels:
            raise ShapeError(
                f"head.in_channels is {head.in_channels} but backbone.out_channels is "
                f"{getattr(backbone, 'out_channels', None)}"
            )
        if getattr(backbone, "out_stride", None) != head.stride:
            raise ShapeError(
                f"head.stride is {head.stride} but backbone.out_stride is "
                f"{getattr(backbone, 'out_stride', None)}"
            )
        self.backbone = backbone
        self.head = head

    def forward(self, images: Tensor) -> FCOSOutput:
        """``Tensor[B, C, H, W]`` images -> raw head output at the backbone's stride."""
        return self.head(self.backbone(images))

    def loss(
        self, images: Tensor, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> dict[str, Tensor]:
        """:param gt_boxes: per image ``Tensor[M_i, 4]`` pixel ``x1, y1, x2, y2``.
        :param gt_labels: per image ``Long[M_i]``."""
        return self.head.loss(self(images), gt_boxes, gt_labels)

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.6,
        max_detections: int = 100,
    ) -> list[Detections2D]:
        """Detections per image, boxes clipped to the image."""
        detections = self.head.predict(
            self(images), score_threshold, iou_threshold, max_detections=max_detections
        )
        height, width = images.shape[-2:]
        for found in detections:
            found.boxes[:, 0::2] = found.boxes[:, 0::2].clamp(0, width)
            found.boxes[:, 1::2] = found.boxes[:, 1::2].clamp(0, height)
        return detections
