"""Classification heads."""

from __future__ import annotations

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import cross_entropy


class LinearClsHead(nn.Module):
    """Global average pool over every spatial dimension, dropout, then a linear layer.

    ``Tensor[B, in_channels, *spatial] -> Tensor[B, num_classes]`` logits (``spatial`` may be
    empty (an MLP's ``Tensor[B, C]``), ``(N,)`` for points or ``(H, W)`` for images).

    :param in_channels: feature channels.
    :param num_classes: number of classes.
    :param dropout: dropout probability before the linear layer.
    :param label_smoothing: in ``[0, 1)``; the cross-entropy target becomes
        ``(1 - s) * onehot + s / num_classes`` (0: plain cross-entropy).
    """

    def __init__(
        self, in_channels: int, num_classes: int, dropout: float = 0.0, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not 0.0 <= label_smoothing < 1.0:
            raise FormatError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_channels, num_classes)

    def forward(self, features: Tensor) -> Tensor:
        if features.ndim < 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"LinearClsHead: expected Tensor[B, {self.in_channels}, ...], "
                f"got {tuple(features.shape)}"
            )
        pooled = features.flatten(2).mean(dim=2) if features.ndim > 2 else features
        return self.linear(self.dropout(pooled))

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy. :param labels: ``Long[B]`` in ``[0, num_classes)``."""
        if labels.shape != logits.shape[:1]:
            raise ShapeError(f"labels: expected Long[{logits.shape[0]}], got {tuple(labels.shape)}")
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise FormatError(
                f"labels must lie in [0, {self.num_classes}), got {labels.unique().tolist()}"
            )
        return cross_entropy(logits, labels.long(), label_smoothing=self.label_smoothing)
