"""Classifiers assembled from registered parts."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d_classification.heads import LinearClsHead


class ImageClassifier(nn.Module):
    """Backbone -> :class:`LinearClsHead` (global pool + linear), trained with cross-entropy.

    :param backbone: any module with ``out_channels`` mapping ``Tensor[B, C, H, W]`` to
        ``Tensor[B, out_channels, H', W']``.
    :param head: the classification head; its ``in_channels`` must equal the backbone's
        ``out_channels``.
    """

    def __init__(self, backbone: nn.Module, head: LinearClsHead) -> None:
        super().__init__()
        out_channels = getattr(backbone, "out_channels", None)
        if out_channels != head.in_channels:
            raise ShapeError(
                f"head.in_channels is {head.in_channels} but backbone.out_channels is {out_channels}"
            )
        self.backbone = backbone
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, num_classes]`` logits."""
        return self.head(self.backbone(images))

    def loss(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """:param labels: ``Long[B]``. :returns: ``{"loss": cross-entropy}``."""
        return {"loss": self.head.loss(self(images), labels)}

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Class probabilities, ``Tensor[B, num_classes]``."""
        return self(images).softmax(dim=1)
