"""Classifiers assembled from registered parts."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d_classification.heads import LinearClsHead


def _pick(value: int | Sequence[int] | None, index: int, what: str) -> int | None:
    """``value[index]`` for a per-output sequence (pc3d.nn backbones), ``value`` for an int.

    Raises:
        FormatError: ``index`` outside the sequence (naming ``what`` and ``feature_index``).
    """
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value[index])
    except IndexError:
        raise FormatError(
            f"feature_index {index} is out of range: the backbone returns {len(value)} "
            f"feature map(s) ({what} {tuple(value)}); set the backbone's out_indices or feature_index"
        ) from None


class ImageClassifier(nn.Module):
    """Any backbone -> global average pooling + linear layer (:class:`LinearClsHead`), trained
    with cross-entropy.

    The backbone is any module mapping ``Tensor[B, C, H, W]`` to a feature map
    ``Tensor[B, C', H', W']`` (or ``Tensor[B, C']``), or to a tuple of them, as every
    ``pc3d.nn`` backbone does (one per ``out_indices`` entry, shallowest first): the classifier
    then uses entry ``feature_index`` (default: the deepest). ``backbone.out_channels`` (an int,
    or a tuple parallel to the outputs) must equal ``head.in_channels``.

    Engine contract (``docs/engine.md``): ``loss(images, labels) -> {"loss": ...}`` and
    ``predict(images) -> {"logits", "scores", "labels"}``.

    Args:
        backbone: the feature extractor.
        head: the classification head.
        feature_index: which of the backbone's outputs feeds the head.

    Raises:
        ShapeError: ``head.in_channels`` differs from the backbone's output channels.
        FormatError: ``feature_index`` outside the backbone's outputs.
    """

    def __init__(self, backbone: nn.Module, head: LinearClsHead, feature_index: int = -1) -> None:
        super().__init__()
        out_channels = _pick(getattr(backbone, "out_channels", None), feature_index, "out_channels")
        if out_channels != head.in_channels:
            raise ShapeError(
                f"head.in_channels is {head.in_channels} but backbone.out_channels is {out_channels}"
                + (
                    f" (output {feature_index} of {tuple(backbone.out_channels)})"
                    if isinstance(getattr(backbone, "out_channels", None), (tuple, list))
                    else ""
                )
            )
        self.backbone = backbone
        self.head = head
        self.feature_index = feature_index

    def extract_features(self, images: Tensor) -> Tensor:
        """The backbone's feature map that feeds the head, ``Tensor[B, C', *spatial]``."""
        features = self.backbone(images)
        if isinstance(features, (tuple, list)):
            features = features[self.feature_index]
        return features  # type: ignore[no-any-return]

    def forward(self, images: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, num_classes]`` logits."""
        return self.head(self.extract_features(images))

    def loss(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Training loss.

        Args:
            images: ``Tensor[B, C, H, W]``.
            labels: ``Long[B]`` in ``[0, head.num_classes)``.

        Returns:
            ``{"loss": cross-entropy}``.

        Raises:
            FormatError: a label outside the head's classes (naming ``model.head.num_classes``).
        """
        return {"loss": self.head.loss(self(images), labels)}

    def predict(self, images: Tensor) -> dict[str, Tensor]:
        """Class scores of ``Tensor[B, C, H, W]`` images.

        Returns:
            ``{"logits": Tensor[B, K], "scores": Tensor[B, K]`` (softmax probabilities),
            ``"labels": Long[B]`` (the top-1 class)``}``.
        """
        logits = self(images)
        return {"logits": logits, "scores": logits.softmax(dim=1), "labels": logits.argmax(dim=1)}
