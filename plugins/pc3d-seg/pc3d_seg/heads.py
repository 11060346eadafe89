"""Per-point segmentation heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError


class PointMLPSegHead(nn.Module):
    """A per-point MLP to class logits, trained with cross-entropy.

    ``Tensor[P, in_channels] -> Tensor[P, num_classes]``.

    Args:
        in_channels: feature channels per point.
        num_classes: number of classes.
        hidden_channels: widths of the hidden layers (Linear-ReLU-Dropout each).
        dropout: dropout after each hidden layer.
        ignore_index: label value that contributes no loss (unlabelled points).

    Attributes:
        config_key: where configs put the head (``model.head``, as :class:`PointSegmentor`
            holds it); a label outside ``num_classes`` is reported against
            ``<config_key>.num_classes``.

    Raises:
        ValueError: fewer than 2 classes.
    """

    config_key = "model.head"

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
        """``Tensor[P, in_channels]`` -> ``Tensor[P, num_classes]`` logits.

        Raises:
            ShapeError: features that are not ``[P, in_channels]``.
        """
        if features.ndim != 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"PointMLPSegHead: expected Tensor[P, {self.in_channels}], got {tuple(features.shape)}"
            )
        return self.mlp(features)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy over labelled points.

        Args:
            logits: ``Tensor[P, num_classes]``.
            labels: ``Long[P]`` in ``[0, num_classes)`` or ``ignore_index``.

        Returns:
            The scalar loss (a zero that keeps the graph when no point is labelled).

        Raises:
            ShapeError: not one label per point.
            FormatError: a label outside ``[0, num_classes)`` that is not ``ignore_index``,
                naming ``<config_key>.num_classes`` (one min/max reduction per batch).
        """
        if labels.shape != logits.shape[:1]:
            raise ShapeError(f"labels: expected Long[{logits.shape[0]}], got {tuple(labels.shape)}")
        labelled = labels != self.ignore_index
        if labels.numel():
            # Ignored points count as class 0, so one min/max settles every label of the batch.
            low, high = (int(v) for v in torch.stack(torch.aminmax(torch.where(labelled, labels, 0))).tolist())
            if low < 0 or high >= self.num_classes:
                bad = labels[labelled & ((labels < 0) | (labels >= self.num_classes))].unique().tolist()
                raise FormatError(
                    f"labels must lie in [0, {self.num_classes}) = [0, num_classes) "
                    f"({self.config_key}.num_classes) or be {self.ignore_index} (ignored); got "
                    f"{', '.join(map(str, bad))} in the batch"
                )
        if not bool(labelled.any()):
            return logits.sum() * 0.0  # nothing labelled: a zero that keeps the graph
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index)
