"""Classification heads."""

from __future__ import annotations

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import cross_entropy
from pc3d.nn.labels import check_labels


class LinearClsHead(nn.Module):
    """Global average pool over every spatial dimension, dropout, then a linear layer.

    ``Tensor[B, in_channels, *spatial] -> Tensor[B, num_classes]`` logits (``spatial`` may be
    empty (an MLP's ``Tensor[B, C]``), ``(N,)`` for points or ``(H, W)`` for images).

    Args:
        in_channels: feature channels.
        num_classes: number of classes.
        dropout: dropout probability before the linear layer.
        label_smoothing: in ``[0, 1)``; the cross-entropy target becomes
            ``(1 - s) * onehot + s / num_classes`` (0: plain cross-entropy).

    Attributes:
        config_key: where configs put the head (``model.head``, as :class:`ImageClassifier`
            holds it); a label outside ``num_classes`` is reported against
            ``<config_key>.num_classes``.

    Raises:
        ValueError: fewer than 2 classes.
        FormatError: ``label_smoothing`` outside ``[0, 1)``.
    """

    config_key = "model.head"

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
        """``Tensor[B, in_channels, *spatial]`` -> ``Tensor[B, num_classes]`` logits.

        Raises:
            ShapeError: features without ``in_channels`` channels in dimension 1.
        """
        if features.ndim < 2 or features.shape[1] != self.in_channels:
            raise ShapeError(
                f"LinearClsHead: expected Tensor[B, {self.in_channels}, ...], got {tuple(features.shape)}"
            )
        pooled = features.flatten(2).mean(dim=2) if features.ndim > 2 else features
        return self.linear(self.dropout(pooled))

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy.

        Args:
            logits: ``Tensor[B, num_classes]``.
            labels: ``Long[B]`` in ``[0, num_classes)``.

        Returns:
            The scalar loss.

        Raises:
            ShapeError: not one label per row of ``logits``.
            FormatError: a label outside ``[0, num_classes)``, naming ``<config_key>.num_classes``
                (checked with one min/max reduction per batch).
        """
        if labels.shape != logits.shape[:1]:
            raise ShapeError(f"labels: expected Long[{logits.shape[0]}], got {tuple(labels.shape)}")
        check_labels(labels, self.num_classes, f"{self.config_key}.num_classes", name="labels")
        return cross_entropy(logits, labels.long(), label_smoothing=self.label_smoothing)
