"""Per-point segmentation heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError


class PointMLPSegHead(nn.Module):
    """A per-point MLP to class logits, trained with cross-entropy.

    ``Tensor[P, in_channels] -> Tensor[P, num_classes]``.

    :param in_channels: feature channels per point.
    :param num_classes: number of classes.
    :param hidden_channels: widths of the hidden layers (Linear-ReLU-Dropout each).
    :param dropout: dropout after each hidden layer.
    :param ignore_index: label value that contributes no loss (unlabelled points).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        hidden_channels: Sequence[int] = (64,),
        dropout: float = 0.0,
        ignore_index: int = -1,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        layers: list[nn.Module] = []
        previous = in_channels
        for width in hidden_channels:
            layers += [nn.Linear(previous, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            previous = width
        layers.append(nn.Linear(previous, num_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim != 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"PointMLPSegHead: expected Tensor[P, {self.in_channels}], got {tuple(features.shape)}"
            )
        return self.mlp(features)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy over labelled points.

        :param labels: ``Long[P]`` in ``[0, num_classes)`` or ``ignore_index``.
        """
        if labels.shape != logits.shape[:1]:
            raise ShapeError(f"labels: expected Long[{logits.shape[0]}], got {tuple(labels.shape)}")
        labelled = labels != self.ignore_index
        bad = labelled & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            raise FormatError(
                f"labels must lie in [0, {self.num_classes}) or be {self.ignore_index} (ignored); "
                f"got {labels[bad].unique().tolist()}"
            )
        if not bool(labelled.any()):
            return logits.sum() * 0.0  # nothing labelled: a zero that keeps the graph
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index)
