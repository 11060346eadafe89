"""Segmentors assembled from registered parts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d_seg.heads import PointMLPSegHead


class PointSegmentor(nn.Module):
    """Per-point encoder -> :class:`PointMLPSegHead`.

    Args:
        backbone: maps ``[Tensor[N_i, C]] * B`` to ``Tensor[sum N_i, out_channels]``.
        head: its ``in_channels`` must equal the backbone's ``out_channels``.

    Raises:
        ShapeError: ``head.in_channels`` differs from ``backbone.out_channels``.
    """

    def __init__(self, backbone: nn.Module, head: PointMLPSegHead) -> None:
        super().__init__()
        out_channels = getattr(backbone, "out_channels", None)
        if out_channels != head.in_channels:
            raise ShapeError(
                f"head.in_channels is {head.in_channels} but backbone.out_channels is {out_channels}"
            )
        self.backbone = backbone
        self.head = head

    def forward(self, points: Sequence[Tensor]) -> Tensor:
        """``[Tensor[N_i, C]] * B -> Tensor[sum N_i, num_classes]`` logits, clouds in order."""
        return self.head(self.backbone(points))

    def loss(self, points: Sequence[Tensor], labels: Sequence[Tensor]) -> dict[str, Tensor]:
        """Training loss.

        Args:
            points: one ``Tensor[N_i, C]`` per cloud.
            labels: one ``Long[N_i]`` per cloud.

        Returns:
            ``{"loss": cross-entropy}``.

        Raises:
            ShapeError: a cloud without one label per point.
            FormatError: a label outside the head's classes (naming ``model.head.num_classes``).
        """
        for index, (cloud, cloud_labels) in enumerate(zip(points, labels, strict=True)):
            if cloud_labels.shape != (cloud.shape[0],):
                raise ShapeError(
                    f"labels[{index}]: expected Long[{cloud.shape[0]}], got {tuple(cloud_labels.shape)}"
                )
        return {"loss": self.head.loss(self(points), torch.cat(list(labels)).long())}

    @torch.no_grad()
    def predict(self, points: Sequence[Tensor]) -> list[Tensor]:
        """Class indices of every point.

        Args:
            points: one ``Tensor[N_i, C]`` per cloud.

        Returns:
            One ``Long[N_i]`` per cloud.
        """
        labels = self(points).argmax(dim=1)
        return list(labels.split([len(c) for c in points]))
