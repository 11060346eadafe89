"""Segmentation heads: per-point MLP classifier (point clouds) and FCN head (images)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import ShapeError
from pc3d.nn.labels import check_labels
from pc3d.nn.layers import ConvNormAct
from pc3d_seg.losses import seg_loss


class SegHead(nn.Module):
    """What the segmentation heads share: the class count, the loss settings and the loss of
    per-point (or per-pixel) logits.

    Args:
        num_classes: number of classes.
        ignore_index: label value that contributes no loss (unlabelled points or pixels).
        class_weight: one cross-entropy weight per class (rare classes up), or None.
        lovasz_weight: weight of the Lovász-softmax term (0: cross-entropy only).

    Attributes:
        config_key: where configs put the head (``model.head``, as the segmentors hold it); a
            label outside ``num_classes`` is reported against ``<config_key>.num_classes``.

    Raises:
        ValueError: fewer than 2 classes, or not one class weight per class.
    """

    config_key = "model.head"

    def __init__(
        self, num_classes: int, ignore_index: int, class_weight: list[float] | None, lovasz_weight: float
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if class_weight is not None and len(class_weight) != num_classes:
            raise ValueError(f"class_weight holds {len(class_weight)} weights for num_classes={num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        self.lovasz_weight = float(lovasz_weight)

    def labelled_losses(self, logits: Tensor, labels: Tensor, what: str) -> dict[str, Tensor]:
        """Every loss term and their total ``"loss"`` (see :func:`pc3d_seg.losses.seg_loss`).

        Args:
            logits: ``Tensor[N, num_classes]``.
            labels: ``Long[...]`` of ``N`` labels in ``[0, num_classes)`` or ``ignore_index``.
            what: the labels' name in errors (``"labels"``, ``"masks"``).

        Raises:
            FormatError: a label outside ``[0, num_classes)`` that is not ``ignore_index``, naming
                ``<config_key>.num_classes``.
        """
        check_labels(labels, self.num_classes, f"{self.config_key}.num_classes", what, self.ignore_index)
        return seg_loss(logits, labels.reshape(-1), self.ignore_index, self.class_weight, self.lovasz_weight)


class PointMLPSegHead(SegHead):
    """A per-point MLP to class logits, trained with cross-entropy (+ optional Lovász-softmax).

    ``Tensor[P, in_channels] -> Tensor[P, num_classes]``.

    Args:
        in_channels: feature channels per point.
        num_classes: number of classes.
        hidden_channels: widths of the hidden layers (Linear-ReLU-Dropout each).
        dropout: dropout after each hidden layer.
        ignore_index: label value that contributes no loss (unlabelled points).
        class_weight: one cross-entropy weight per class (rare classes up), or None.
        lovasz_weight: weight of the Lovász-softmax term (0: cross-entropy only).

    Raises:
        ValueError: fewer than 2 classes, or not one class weight per class.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden_channels: Sequence[int] = (64,),
        dropout: float = 0.0,
        ignore_index: int = -1,
        class_weight: list[float] | None = None,
        lovasz_weight: float = 0.0,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_weight, lovasz_weight)
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        previous = in_channels
        for width in hidden_channels:
            layers += [nn.Linear(previous, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            previous = width
        layers.append(nn.Linear(previous, num_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        """``Tensor[P, in_channels]`` -> ``Tensor[P, num_classes]`` logits.

        Raises:
            ShapeError: features that are not ``[P, in_channels]``.
        """
        if features.ndim != 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"PointMLPSegHead: expected Tensor[P, {self.in_channels}], got {tuple(features.shape)}"
            )
        return self.mlp(features)

    def losses(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Every loss term and their total ``"loss"`` (see :func:`pc3d_seg.losses.seg_loss`).

        Args:
            logits: ``Tensor[P, num_classes]``.
            labels: ``Long[P]`` in ``[0, num_classes)`` or ``ignore_index``.

        Raises:
            ShapeError: not one label per point.
            FormatError: a label outside ``[0, num_classes)`` that is not ``ignore_index``,
                naming ``<config_key>.num_classes``.
        """
        if labels.shape != logits.shape[:1]:
            raise ShapeError(f"labels: expected Long[{logits.shape[0]}], got {tuple(labels.shape)}")
        return self.labelled_losses(logits, labels, "labels")

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The total loss of :meth:`losses` (a zero that keeps the graph when no point is labelled)."""
        return self.losses(logits, labels)["loss"]


class FCNHead(SegHead):
    """FCN head (Long et al., 2015; MMSegmentation's ``FCNHead``) on backbone feature maps.

    The chosen maps (``in_index``; several are resized to the first one's size and concatenated)
    go through ``num_convs`` 3x3 conv-BN-ReLU layers, dropout and a 1x1 classifier:
    ``[Tensor[B, C_i, H_i, W_i]] -> Tensor[B, num_classes, H, W]`` at the first chosen map's size.

    Args:
        in_channels: channels of each chosen map (an int for one map).
        num_classes: number of classes.
        channels: width of the conv layers.
        num_convs: conv layers before the classifier (0: classifier only).
        in_index: which backbone outputs to use (index into the tuple it returns).
        dropout: dropout before the classifier.
        ignore_index: pixel label that contributes no loss.
        class_weight: one cross-entropy weight per class, or None.
        lovasz_weight: weight of the Lovász-softmax term.

    Raises:
        ValueError: fewer than 2 classes, not one class weight per class, or ``in_channels`` and
            ``in_index`` of different lengths.
    """

    def __init__(
        self,
        in_channels: int | list[int],
        num_classes: int,
        channels: int = 64,
        num_convs: int = 2,
        in_index: int | list[int] = -1,
        dropout: float = 0.1,
        ignore_index: int = -1,
        class_weight: list[float] | None = None,
        lovasz_weight: float = 0.0,
    ) -> None:
        super().__init__(num_classes, ignore_index, class_weight, lovasz_weight)
        self.in_index = [in_index] if isinstance(in_index, int) else list(in_index)
        widths = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if len(widths) != len(self.in_index):
            raise ValueError(f"in_channels {widths} and in_index {self.in_index} need one entry per map")
        layers: list[nn.Module] = []
        previous = sum(widths)
        for _ in range(num_convs):
            layers += ConvNormAct(previous, channels, 3)  # unpacked: the layer names stay flat
            previous = channels
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(previous, num_classes, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Logits ``Tensor[B, num_classes, H, W]`` at the size of the first chosen map."""
        maps = [features[i] for i in self.in_index]
        size = maps[0].shape[-2:]
        maps = [
            m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in maps
        ]
        return self.classifier(
            self.dropout(self.convs(maps[0] if len(maps) == 1 else torch.cat(maps, dim=1)))
        )

    def losses(self, logits: Tensor, masks: Tensor) -> dict[str, Tensor]:
        """Per-pixel losses of logits ``Tensor[B, K, H, W]`` against ``Long[B, H, W]`` masks.

        Raises:
            ShapeError: masks of another size than the logits.
            FormatError: a label outside ``[0, num_classes)`` that is not ``ignore_index``.
        """
        if masks.shape != (logits.shape[0], *logits.shape[2:]):
            raise ShapeError(
                f"masks: expected Long{[logits.shape[0], *logits.shape[2:]]}, got {tuple(masks.shape)}"
            )
        return self.labelled_losses(logits.permute(0, 2, 3, 1).reshape(-1, self.num_classes), masks, "masks")
