"""The one base of the det2d models: backbone -> FPN -> a head, with the engine's
``loss(**batch)`` / ``predict(**batch)`` contract.

Batch keys (from :func:`pc3d_det2d.data.collate_detection`): ``images`` ``Tensor[B, 3, H, W]``
(padded), ``gt_boxes`` ``list[Tensor[M_i, 4]]`` pixel ``x1, y1, x2, y2``, ``gt_labels``
``list[Long[M_i]]``, ``image_sizes`` ``Long[B, 2]`` (each image's ``(h, w)`` before padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d.nn import FPN
from pc3d_det2d.structures import Detections2D

__all__ = ["Detector2D", "check_backbone_neck"]


def check_backbone_neck(backbone: nn.Module, neck: FPN) -> None:
    """The FPN must take the backbone's outputs: same channels, in order."""
    channels = tuple(getattr(backbone, "out_channels", ()))
    if tuple(neck.in_channels) != channels:
        raise ShapeError(
            f"neck.in_channels is {list(neck.in_channels)} but the backbone's outputs have channels "
            f"{list(channels)} (set the backbone's out_indices or the neck's in_channels to match)"
        )
    strides = getattr(backbone, "out_strides", None)
    if neck.out_strides is None and strides is not None:
        raise ShapeError(f"give the neck in_strides: {list(strides)} (the backbone's out_strides) so the head can check its strides")


def check_head_strides(head_strides: Sequence[int], neck: FPN, what: str) -> None:
    if neck.out_strides is not None and tuple(int(s) for s in head_strides) != tuple(neck.out_strides):
        raise ShapeError(f"{what} strides are {list(head_strides)} but the neck's outputs have strides {list(neck.out_strides)}")


def image_sizes_or_full(images: Tensor, image_sizes: Tensor | None) -> Tensor:
    if image_sizes is None:
        return torch.tensor([list(images.shape[-2:])] * images.shape[0], device=images.device)
    sizes = torch.as_tensor(image_sizes, device=images.device)
    if sizes.shape != (images.shape[0], 2):
        raise ShapeError(f"image_sizes must be ({images.shape[0]}, 2) rows of (h, w), got {tuple(sizes.shape)}")
    return sizes


class Detector2D(nn.Module):
    """Backbone + FPN + a dense head with ``loss(feats, gt_boxes, gt_labels, image_sizes)`` and
    ``predict(feats, image_sizes)``."""

    def __init__(self, backbone: nn.Module, neck: FPN, head: nn.Module) -> None:
        super().__init__()
        check_backbone_neck(backbone, neck)
        check_head_strides(getattr(head, "strides", ()), neck, type(head).__name__)
        if getattr(head, "in_channels", None) != neck.out_channels[0]:
            raise ShapeError(f"head.in_channels is {getattr(head, 'in_channels', None)} but the neck gives {neck.out_channels[0]} channels")
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def extract_features(self, images: Tensor) -> tuple[Tensor, ...]:
        """``Tensor[B, 3, H, W]`` -> FPN levels ``Tensor[B, C, H / s_l, W / s_l]``."""
        if images.dim() != 4:
            raise ShapeError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        return self.neck(self.backbone(images))

    def forward(self, images: Tensor) -> Any:
        return self.head(self.extract_features(images))

    def loss(
        self,
        images: Tensor,
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor | None = None,
    ) -> dict[str, Tensor]:
        if len(gt_boxes) != images.shape[0] or len(gt_labels) != images.shape[0]:
            raise ShapeError(f"{images.shape[0]} images but {len(gt_boxes)} gt_boxes and {len(gt_labels)} gt_labels entries")
        sizes = image_sizes_or_full(images, image_sizes)
        losses = self.head.loss(self.extract_features(images), list(gt_boxes), list(gt_labels), sizes)
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Tensor | None = None) -> list[Detections2D]:
        """Detections per image, in the pixels of ``images`` (clipped to each image's size)."""
        sizes = image_sizes_or_full(images, image_sizes)
        return self.head.predict(self.extract_features(images), sizes)
