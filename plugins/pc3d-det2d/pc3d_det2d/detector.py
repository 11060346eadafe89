"""The bases of the det2d models: :class:`FPNDetector2D` (backbone -> FPN with the engine's
``loss(**batch)`` / ``predict(**batch)`` contract, which Faster R-CNN builds on) and
:class:`Detector2D` (the one-stage models: a dense head on the FPN), and their checks.

Batch keys (from :func:`pc3d_det2d.data.collate_detection`): ``images`` ``Tensor[B, 3, H, W]``
(padded), ``gt_boxes`` ``list[Tensor[M_i, 4]]`` pixel ``x1, y1, x2, y2``, ``gt_labels``
``list[Long[M_i]]``, ``image_sizes`` ``Long[B, 2]`` (each image's ``(h, w)`` before padding).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import FPN
from pc3d_det2d.structures import Detections2D

__all__ = [
    "Detector2D",
    "FPNDetector2D",
    "check_backbone_neck",
    "check_batch_targets",
    "check_head_strides",
    "image_sizes_or_full",
    "pyramid_features",
]


def check_backbone_neck(backbone: nn.Module, neck: FPN) -> None:
    """Check that the FPN takes the backbone's outputs: same channels, in order.

    Args:
        backbone: a backbone with ``out_channels`` (and ``out_strides``).
        neck: the FPN.

    Raises:
        ShapeError: channels that differ, or a backbone with strides and a neck without.
    """
    channels = tuple(getattr(backbone, "out_channels", ()))
    if tuple(neck.in_channels) != channels:
        raise ShapeError(
            f"neck.in_channels is {list(neck.in_channels)} but the backbone's outputs have channels "
            f"{list(channels)} (set the backbone's out_indices or the neck's in_channels to match)"
        )
    strides = getattr(backbone, "out_strides", None)
    if neck.out_strides is None and strides is not None:
        raise ShapeError(
            f"give the neck in_strides: {list(strides)} (the backbone's out_strides) so the head can check its strides"
        )


def check_head_strides(head_strides: Sequence[int], neck: FPN, what: str) -> None:
    """Check that a head's strides are the neck's output strides (when the neck knows them).

    Args:
        head_strides: the head's strides.
        neck: the FPN.
        what: the head's name, for the message.

    Raises:
        ShapeError: strides that differ.
    """
    if neck.out_strides is not None and tuple(int(s) for s in head_strides) != tuple(neck.out_strides):
        raise ShapeError(
            f"{what} strides are {list(head_strides)} but the neck's outputs have strides {list(neck.out_strides)}"
        )


def image_sizes_or_full(images: Tensor, image_sizes: Tensor | None) -> Tensor:
    """Each image's ``(h, w)`` before padding.

    Args:
        images: ``Tensor[B, 3, H, W]``.
        image_sizes: ``Long[B, 2]``, or None for the full ``(H, W)`` of every image.

    Returns:
        ``Long[B, 2]`` on the images' device.

    Raises:
        ShapeError: sizes that are not one ``(h, w)`` row per image.
    """
    if image_sizes is None:
        return torch.tensor([list(images.shape[-2:])] * images.shape[0], device=images.device)
    sizes = torch.as_tensor(image_sizes, device=images.device)
    if sizes.shape != (images.shape[0], 2):
        raise ShapeError(
            f"image_sizes must be ({images.shape[0]}, 2) rows of (h, w), got {tuple(sizes.shape)}"
        )
    return sizes


def check_batch_targets(images: Tensor, gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]) -> None:
    """Check that a batch has one box tensor and one label tensor per image.

    Raises:
        ShapeError: naming the three counts.
    """
    if len(gt_boxes) != images.shape[0] or len(gt_labels) != images.shape[0]:
        raise ShapeError(
            f"{images.shape[0]} images but {len(gt_boxes)} gt_boxes and {len(gt_labels)} gt_labels entries"
        )


def pyramid_features(backbone: nn.Module, neck: FPN, images: Tensor) -> tuple[Tensor, ...]:
    """FPN levels of a batch of images.

    Args:
        backbone: the backbone.
        neck: the FPN over its outputs.
        images: ``Tensor[B, 3, H, W]``.

    Returns:
        The levels ``Tensor[B, C, H / s_l, W / s_l]``.

    Raises:
        ShapeError: images that are not a 4-D batch.
    """
    if images.dim() != 4:
        raise ShapeError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    return neck(backbone(images))


class FPNDetector2D(nn.Module, abc.ABC):
    """Backbone + FPN with the engine's ``loss`` / ``predict`` (batch keys as in the module
    docstring): the batch checks, the image sizes and the total loss are here; a subclass turns
    the FPN levels into losses (:meth:`head_losses`) and detections (:meth:`head_predict`).

    A subclass sets ``backbone`` and ``neck`` in its constructor and implements both hooks.
    """

    backbone: nn.Module
    neck: FPN

    def extract_features(self, images: Tensor) -> tuple[Tensor, ...]:
        """FPN levels of ``images`` (see :func:`pyramid_features`)."""
        return pyramid_features(self.backbone, self.neck, images)

    def loss(
        self,
        images: Tensor,
        gt_boxes: Sequence[Tensor],
        gt_labels: Sequence[Tensor],
        image_sizes: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Training losses (batch keys as in the module docstring).

        Returns:
            The heads' losses (see :meth:`head_losses`); ``loss`` is their sum.

        Raises:
            ShapeError: not one box and one label tensor per image.
            FormatError: a label outside the head's classes (naming the config key).
        """
        check_batch_targets(images, gt_boxes, gt_labels)
        sizes = image_sizes_or_full(images, image_sizes)
        losses = self.head_losses(self.extract_features(images), list(gt_boxes), list(gt_labels), sizes)
        losses["loss"] = sum(losses.values())
        return losses

    @torch.no_grad()
    def predict(self, images: Tensor, image_sizes: Tensor | None = None) -> list[Detections2D]:
        """Detections per image, in the pixels of ``images`` (clipped to each image's size)."""
        sizes = image_sizes_or_full(images, image_sizes)
        return self.head_predict(self.extract_features(images), sizes)

    # The two hooks every detector gives; abstract, so a subclass without one cannot be built.
    @abc.abstractmethod
    def head_losses(
        self, feats: Sequence[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor], image_sizes: Tensor
    ) -> dict[str, Tensor]:
        """The heads' losses by name from FPN levels, per-image targets and ``Long[B, 2]`` sizes."""

    @abc.abstractmethod
    def head_predict(self, feats: Sequence[Tensor], image_sizes: Tensor) -> list[Detections2D]:
        """Detections per image from FPN levels and ``Long[B, 2]`` image sizes."""


class Detector2D(FPNDetector2D):
    """Backbone + FPN + a dense head with ``loss(feats, gt_boxes, gt_labels, image_sizes)`` and
    ``predict(feats, image_sizes)``.

    Args:
        backbone: feature extractor with ``out_channels`` (and ``out_strides``).
        neck: the FPN over the backbone's outputs.
        head: the dense head (``in_channels``, ``strides``).

    Raises:
        FormatError: a head that is not a ``head_type``.
        ShapeError: channels or strides that do not chain.
    """

    #: The head class a subclass takes; another head is refused with a FormatError.
    head_type: ClassVar[type[nn.Module]] = nn.Module

    def __init__(self, backbone: nn.Module, neck: FPN, head: nn.Module) -> None:
        if not isinstance(head, self.head_type):
            raise FormatError(
                f"{type(self).__name__} needs a {self.head_type.__name__}, got {type(head).__name__}"
            )
        super().__init__()
        check_backbone_neck(backbone, neck)
        check_head_strides(getattr(head, "strides", ()), neck, type(head).__name__)
        if getattr(head, "in_channels", None) != neck.out_channels[0]:
            raise ShapeError(
                f"head.in_channels is {getattr(head, 'in_channels', None)} but the neck gives {neck.out_channels[0]} channels"
            )
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(self, images: Tensor) -> Any:
        """The head's raw outputs for ``Tensor[B, 3, H, W]`` images."""
        return self.head(self.extract_features(images))

    def head_losses(
        self, feats: Sequence[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor], image_sizes: Tensor
    ) -> dict[str, Tensor]:
        """The dense head's losses (see its ``loss``)."""
        return self.head.loss(feats, gt_boxes, gt_labels, image_sizes)

    def head_predict(self, feats: Sequence[Tensor], image_sizes: Tensor) -> list[Detections2D]:
        """The dense head's detections (see its ``predict``)."""
        return self.head.predict(feats, image_sizes)
