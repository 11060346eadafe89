"""Segmentation losses: weighted cross-entropy with an ignore index, Lovász-softmax."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pc3d.errors import ShapeError
from pc3d.nn.losses import cross_entropy

__all__ = ["lovasz_softmax", "seg_loss"]


def lovasz_softmax(logits: Tensor, labels: Tensor, ignore_index: int = -1) -> Tensor:
    """Lovász-softmax loss (Berman et al., 2018): a convex surrogate of 1 - IoU, per class.

    Vectorised over classes: each class's errors are sorted once (one ``sort`` along the points).
    Averaged over the classes present in ``labels``.

    Args:
        logits: ``Tensor[P, C]``.
        labels: ``Long[P]`` in ``[0, C)`` or ``ignore_index``.
        ignore_index: the label of ignored points.

    Returns:
        The scalar loss (a zero that keeps the graph when nothing is labelled).
    """
    keep = labels != ignore_index
    probs, labels = logits.softmax(dim=1)[keep], labels[keep]
    if labels.numel() == 0:
        return logits.sum() * 0.0
    truth = F.one_hot(labels, logits.shape[1]).to(probs.dtype)  # [P, C]
    errors, order = (truth - probs).abs().sort(dim=0, descending=True)
    truth_sorted = truth.gather(0, order)
    positives = truth_sorted.sum(dim=0)
    intersection = positives - truth_sorted.cumsum(dim=0)
    union = positives + (1.0 - truth_sorted).cumsum(dim=0)
    jaccard = 1.0 - intersection / union
    gradient = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])  # the Lovász extension's weights
    per_class = (errors * gradient).sum(dim=0)
    return per_class[positives > 0].mean()


def seg_loss(
    logits: Tensor,
    labels: Tensor,
    ignore_index: int,
    class_weight: Sequence[float] | None = None,
    lovasz_weight: float = 0.0,
) -> dict[str, Tensor]:
    """Cross-entropy (``pc3d.nn.losses.cross_entropy``, averaged over labelled points) plus an
    optional Lovász-softmax term.

    Args:
        logits: ``Tensor[P, C]``.
        labels: ``Long[P]``, already checked (``pc3d.nn.labels.check_labels``).
        ignore_index: the label of ignored points.
        class_weight: ``C`` per-class weights of the cross-entropy.
        lovasz_weight: weight of the Lovász term (0: left out).

    Returns:
        ``{"loss_ce": ..., ["loss_lovasz": ...,] "loss": total}``.

    Raises:
        ShapeError: ``class_weight`` without one weight per class.
    """
    if class_weight is not None and len(class_weight) != logits.shape[1]:
        raise ShapeError(f"class_weight holds {len(class_weight)} weights for {logits.shape[1]} classes")
    if not bool((labels != ignore_index).any()):
        zero = logits.sum() * 0.0  # nothing labelled: a zero that keeps the graph
        return {"loss_ce": zero, "loss": zero}
    weight = None if class_weight is None else logits.new_tensor([float(w) for w in class_weight])
    losses = {"loss_ce": cross_entropy(logits, labels, class_weight=weight, ignore_index=ignore_index)}
    if lovasz_weight:
        losses["loss_lovasz"] = lovasz_weight * lovasz_softmax(logits, labels, ignore_index)
    losses["loss"] = sum(losses.values(), logits.new_zeros(()))
    return losses
