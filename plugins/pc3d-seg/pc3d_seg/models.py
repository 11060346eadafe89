"""Segmentors assembled from registered parts: point clouds (:class:`PointSegmentor`) and images
(:class:`ImageSegmentor`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d.nn.backbones.base import check_image_batch
from pc3d.nn.labels import model_class_names
from pc3d_seg.heads import FCNHead, PointMLPSegHead


class PointSegmentor(nn.Module):
    """Per-point backbone -> :class:`PointMLPSegHead`: one class per point.

    The backbone maps ``[Tensor[N_i, C]] * B`` to ``Tensor[sum N_i, out_channels]``
    (``PointNetEncoder``, ``SparseUNet``, ``PointNet2``).

    Args:
        backbone: the per-point feature extractor.
        head: its ``in_channels`` must equal the backbone's ``out_channels``.
        class_names: the classes by label index (outputs, ``.label`` raw ids, checkpoints), as
            many as the head's ``num_classes``; default ``"0"``, ``"1"``, ...

    Attributes:
        task: ``"point_segmentation"`` (what ``pc3d infer`` checks to write per-point labels).
        class_names: the classes by label index.

    Raises:
        ShapeError: ``head.in_channels`` differs from ``backbone.out_channels``.
        FormatError: ``class_names`` of another count than the head's ``num_classes``.
    """

    task = "point_segmentation"

    def __init__(
        self, backbone: nn.Module, head: PointMLPSegHead, class_names: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        self.class_names = model_class_names(class_names, head.num_classes)
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
        """Training losses of one batch.

        Args:
            points: one ``Tensor[N_i, C]`` per cloud.
            labels: one ``Long[N_i]`` per cloud.

        Returns:
            ``{"loss_ce", ["loss_lovasz",] "loss": total}``.

        Raises:
            ShapeError: a cloud without one label per point.
            FormatError: a label outside the head's classes (naming ``model.head.num_classes``).
        """
        for index, (cloud, cloud_labels) in enumerate(zip(points, labels, strict=True)):
            if cloud_labels.shape != (cloud.shape[0],):
                raise ShapeError(
                    f"labels[{index}]: expected Long[{cloud.shape[0]}], got {tuple(cloud_labels.shape)}"
                )
        return self.head.losses(self(points), torch.cat(list(labels)).long())

    @torch.no_grad()
    def predict(self, points: Sequence[Tensor]) -> list[Tensor]:
        """Class indices of every point.

        Args:
            points: one ``Tensor[N_i, C]`` per cloud.

        Returns:
            One ``Long[N_i]`` per cloud (empty for an empty cloud).
        """
        if sum(len(c) for c in points) == 0:  # nothing to label: not every backbone takes no point
            return [torch.empty(0, dtype=torch.long, device=c.device) for c in points]
        labels = self(points).argmax(dim=1)
        return list(labels.split([len(c) for c in points]))


class ImageSegmentor(nn.Module):
    """Image backbone (e.g. ``pc3d.nn.ResNet``) -> :class:`FCNHead`, logits resized to the image.

    Args:
        backbone: returns a tuple of feature maps (``pc3d.nn`` backbones do).
        head: reads the maps its ``in_index`` names.
        class_names: the classes by label index, as many as the head's ``num_classes``.

    Attributes:
        task: ``"image_segmentation"``.
        class_names: the classes by label index.
    """

    task = "image_segmentation"

    def __init__(self, backbone: nn.Module, head: FCNHead, class_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.class_names = model_class_names(class_names, head.num_classes)
        self.backbone = backbone
        self.head = head

    def forward(self, images: Tensor) -> Tensor:
        """``Tensor[B, 3, H, W] -> Tensor[B, num_classes, H, W]`` logits (bilinear upsampling).

        Raises:
            ShapeError: not an image batch of the backbone's channels.
        """
        check_image_batch(
            images, int(getattr(self.backbone, "in_channels", images.shape[1])), "ImageSegmentor"
        )
        features = self.backbone(images)
        features = features if isinstance(features, (tuple, list)) else (features,)
        logits = self.head(features)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def loss(self, images: Tensor, masks: Tensor) -> dict[str, Tensor]:
        """Per-pixel losses against ``Long[B, H, W]`` masks (``{"loss_ce", ..., "loss"}``)."""
        return self.head.losses(self(images), masks.long())

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Tensor]:
        """One ``Long[H, W]`` class map per image."""
        return list(self(images).argmax(dim=1))
