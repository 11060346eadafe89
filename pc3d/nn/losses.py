"""Detection / classification losses with MMDetection-style weighting and reduction.

Every functional loss computes an element-wise loss, multiplies it by `weight` (broadcast to the
element-wise shape: per sample `Tensor[N]` or per element), then reduces:

- `reduction="none"`: the weighted element-wise loss;
- `"sum"`: its sum;
- `"mean"`: its sum divided by `avg_factor` when given (e.g. the number of positive anchors, so a
  loss is averaged over what matters rather than over every anchor), else its mean.

`avg_factor` with `"sum"` or `"none"` is an error (it would be silently ignored). The module
forms (`FocalLoss`, `GaussianFocalLoss`, ...) add `loss_weight` and a per-call `reduction_override`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.ops.iou_2d import bbox_overlaps

Reduction = Literal["none", "mean", "sum"]
AvgFactor = float | Tensor | None
_EPS = torch.finfo(torch.float32).eps


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Weight an element-wise loss and reduce it (see the module docstring)."""
    if reduction not in ("none", "mean", "sum"):
        raise FormatError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if weight is not None:
        if weight.dim() < loss.dim():
            # A per-sample weight [N] on an element-wise loss [N, C]: one weight per row.
            weight = weight.reshape(*weight.shape, *([1] * (loss.dim() - weight.dim())))
        loss = loss * weight
    if avg_factor is None:
        if reduction == "mean":
            return loss.mean() if loss.numel() > 0 else loss.sum()
        return loss.sum() if reduction == "sum" else loss
    if reduction != "mean":
        raise FormatError(f"avg_factor is only meaningful with reduction='mean', got reduction={reduction!r}")
    # eps keeps an avg_factor of 0 (an image with no positives) from dividing by zero.
    return loss.sum() / (avg_factor + _EPS)


def _check_same_shape(pred: Tensor, target: Tensor, what: str) -> None:
    if pred.shape != target.shape:
        raise ShapeError(
            f"{what}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have one shape"
        )


def sigmoid_focal_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    gamma: float = 2.0,
    alpha: float = 0.25,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Sigmoid focal loss (Lin et al., 2017) for one-vs-all classification.

    `loss = -alpha_t * (1 - p_t)^gamma * log(p_t)` element-wise, with `p = sigmoid(pred)`,
    `p_t = p` for a positive element and `1 - p` otherwise, `alpha_t = alpha` / `1 - alpha`
    (`alpha < 0` disables the alpha term). Computed from logits with `binary_cross_entropy_with_logits`
    so it stays finite for large logits.

    Args:
        pred: `Tensor[N, C]` logits.
        target: `LongTensor[N]` class indices in `[0, C]`, where `C` means background (all
            elements negative); or a float `Tensor[N, C]` of (soft) binary targets.
        weight: `Tensor[N]` per sample or `Tensor[N, C]` per element.
        gamma: the focusing exponent.
        alpha: the positives' weight (negatives get `1 - alpha`); `< 0` disables it.
        reduction: `"none"`, `"mean"` or `"sum"` (see `weight_reduce_loss`).
        avg_factor: divides the sum instead of the element count when `reduction="mean"`.

    Returns:
        The loss, `Tensor[N, C]` with `reduction="none"`, else a scalar.
    """
    if pred.dim() != 2:
        raise ShapeError(f"focal loss pred must be (N, C) logits, got {tuple(pred.shape)}")
    num_classes = pred.shape[1]
    if target.is_floating_point():
        _check_same_shape(pred, target, "sigmoid_focal_loss")
        t = target.to(pred.dtype)
    else:
        if target.shape != pred.shape[:1]:
            raise ShapeError(
                f"focal loss class targets must have shape ({pred.shape[0]},), got {tuple(target.shape)}"
            )
        if target.numel() > 0 and (bool((target < 0).any()) or bool((target > num_classes).any())):
            raise FormatError(
                f"focal loss class targets must be in [0, {num_classes}] ({num_classes} = background)"
            )
        # One column more than classes, so that the background index C lands in a dropped column.
        t = F.one_hot(target, num_classes + 1)[:, :num_classes].to(pred.dtype)
    p = pred.sigmoid()
    ce = F.binary_cross_entropy_with_logits(pred, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t).pow(gamma)
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def gaussian_focal_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    alpha: float = 2.0,
    gamma: float = 4.0,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """CenterNet's penalty-reduced focal loss on Gaussian heatmaps (MMDetection's `GaussianFocalLoss`).

    With `p = sigmoid(pred)`, element-wise: `-log(p) * (1 - p)^alpha` where `target == 1` (an
    object centre) and `-log(1 - p) * p^alpha * (1 - target)^gamma` elsewhere, so cells near a
    centre are penalised less. Computed from logits with `logsigmoid` so it stays finite for large
    logits (MMDetection's takes probabilities).

    Args:
        pred: `Tensor[...]` logits, e.g. `Tensor[B, K, H, W]` heatmaps.
        target: float `Tensor` of `pred`'s shape in [0, 1], exactly 1 at object centres.
        weight: per-element weights of `pred`'s shape (or broadcastable to it), or None.
        alpha: the focusing exponent on the predicted probability.
        gamma: the exponent that lowers the penalty near centres (CenterNet's `beta`).
        reduction: `"none"`, `"mean"` or `"sum"` (see `weight_reduce_loss`).
        avg_factor: divides the sum when `reduction="mean"`; without it, `"mean"` divides the sum
            by the number of centres (elements with `target == 1`, at least 1), not by the element
            count.

    Returns:
        The loss, `Tensor[...]` of `pred`'s shape with `reduction="none"`, else a scalar.

    Raises:
        ShapeError: `pred` and `target` of different shapes.
    """
    _check_same_shape(pred, target, "gaussian_focal_loss")
    target = target.to(pred.dtype)
    positive = target.eq(1)
    prob = pred.sigmoid()
    loss = torch.where(
        positive,
        -F.logsigmoid(pred) * (1 - prob) ** alpha,
        -F.logsigmoid(-pred) * prob**alpha * (1 - target) ** gamma,
    )
    if reduction == "mean" and avg_factor is None:
        # Divided exactly (no eps): the number of centres is an integer >= 1.
        return weight_reduce_loss(loss, weight, "sum") / positive.sum().clamp(min=1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def cross_entropy(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    class_weight: Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Softmax cross-entropy.

    Args:
        pred: `Tensor[N, C]` logits.
        target: `LongTensor[N]` class indices (`ignore_index` marks samples that count nothing).
        weight: `Tensor[N]` per-sample weights.
        class_weight: `Tensor[C]` per-class weights (scale each sample's loss by its class's).
        ignore_index: the target value of samples that count nothing.
        label_smoothing: in [0, 1): the target becomes `(1 - s) * onehot + s / C`.
        reduction: `"none"`, `"mean"` or `"sum"` (see `weight_reduce_loss`).
        avg_factor: divides the sum instead of the sample count when `reduction="mean"`.

    Returns:
        The loss, `Tensor[N]` with `reduction="none"`, else a scalar.

    With `reduction="mean"` and no `avg_factor` the loss is averaged over the samples that are
    not ignored (like `torch.nn.functional.cross_entropy` without class weights).
    """
    if pred.dim() != 2 or target.shape != pred.shape[:1]:
        raise ShapeError(
            f"cross_entropy needs pred (N, C) and target (N,), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise FormatError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    valid = target != ignore_index
    if bool((valid & ((target < 0) | (target >= pred.shape[1]))).any()):
        raise FormatError(
            f"cross_entropy targets must be in [0, {pred.shape[1] - 1}] or ignore_index={ignore_index}"
        )
    loss = F.cross_entropy(
        pred,
        target,
        weight=class_weight,
        ignore_index=ignore_index,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    if reduction == "mean" and avg_factor is None:
        avg_factor = valid.sum().clamp(min=1).to(loss.dtype)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def binary_cross_entropy(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Sigmoid binary cross-entropy from logits; `pred` and float `target` of one shape (e.g. RPN objectness)."""
    _check_same_shape(pred, target, "binary_cross_entropy")
    loss = F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype), reduction="none")
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def smooth_l1_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    beta: float = 1.0,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Smooth L1 (Huber with slope 1): `0.5 x^2 / beta` for `|x| < beta`, else `|x| - 0.5 beta`; `beta=0` is L1."""
    _check_same_shape(pred, target, "smooth_l1_loss")
    if beta < 0:
        raise FormatError(f"beta must be >= 0, got {beta!r}")
    diff = (pred - target).abs()
    loss = diff if beta == 0 else torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


# Same signature as the other element-wise losses on purpose: MMDetection's loss convention
# (pred, target, weight, reduction, avg_factor).
def l1_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """`|pred - target|` element-wise, then weighted and reduced (smooth L1 with `beta=0`)."""
    _check_same_shape(pred, target, "l1_loss")  # so that a shape error names this function
    return smooth_l1_loss(pred, target, weight, beta=0.0, reduction=reduction, avg_factor=avg_factor)


def giou_loss(
    pred: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    eps: float = 1e-6,
    reduction: Reduction = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """`1 - GIoU` of row-wise pairs of `x1, y1, x2, y2` boxes `Tensor[N, 4]` (in [0, 2]); weight `Tensor[N]`."""
    _check_same_shape(pred, target, "giou_loss")
    if pred.shape[-1] != 4:
        raise ShapeError(f"giou_loss needs boxes (N, 4), got {tuple(pred.shape)}")
    loss = 1 - bbox_overlaps(pred, target, "giou", aligned=True, eps=eps)
    if weight is not None and weight.dim() == loss.dim() + 1:
        # Per-coordinate box weights [N, 4] (common in box heads): a box counts with their mean.
        weight = weight.mean(dim=-1)
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


class _Loss(nn.Module):
    """Base of the loss modules: one `forward` signature; subclasses give `_loss` (unweighted)."""

    def __init__(self, reduction: Reduction = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ("none", "mean", "sum"):
            raise FormatError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction: Reduction = reduction
        self.loss_weight = float(loss_weight)

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: Reduction | None = None,
    ) -> Tensor:
        """The loss times `loss_weight`.

        Args:
            pred: predictions.
            target: targets of `pred`'s shape (class indices for the softmax cross-entropy).
            weight: per-element (or per-row) weights, or None.
            avg_factor: the divisor of the "mean" reduction instead of the element count.
            reduction_override: a reduction for this call instead of `reduction`.

        Returns:
            The reduced loss (a scalar) or, with reduction "none", the per-element loss.
        """
        reduction = self.reduction if reduction_override is None else reduction_override
        return self.loss_weight * self._loss(pred, target, weight, reduction, avg_factor)

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        raise NotImplementedError


class FocalLoss(_Loss):
    """Module form of `sigmoid_focal_loss`, times `loss_weight`."""

    def __init__(
        self, gamma: float = 2.0, alpha: float = 0.25, reduction: Reduction = "mean", loss_weight: float = 1.0
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.gamma = gamma
        self.alpha = alpha

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        return sigmoid_focal_loss(pred, target, weight, self.gamma, self.alpha, reduction, avg_factor)


# Same shape as FocalLoss on purpose: each module class takes its function's MMDetection keywords,
# in that function's order (alpha first here) and with its defaults.
class GaussianFocalLoss(_Loss):
    """Module form of `gaussian_focal_loss`, times `loss_weight`."""

    def __init__(
        self, alpha: float = 2.0, gamma: float = 4.0, reduction: Reduction = "mean", loss_weight: float = 1.0
    ) -> None:
        super().__init__(reduction, loss_weight)
        self.alpha = alpha
        self.gamma = gamma

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        return gaussian_focal_loss(pred, target, weight, self.alpha, self.gamma, reduction, avg_factor)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy (`cross_entropy`) or, with `use_sigmoid`, `binary_cross_entropy`; times `loss_weight`."""

    def __init__(
        self,
        use_sigmoid: bool = False,
        class_weight: list[float] | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        reduction: Reduction = "mean",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(reduction, loss_weight)
        if use_sigmoid and (class_weight is not None or label_smoothing > 0):
            raise FormatError(
                "class_weight and label_smoothing apply to the softmax loss (use_sigmoid=False)"
            )
        self.use_sigmoid = use_sigmoid
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        if self.use_sigmoid:
            return binary_cross_entropy(pred, target, weight, reduction, avg_factor)
        class_weight = None if self.class_weight is None else pred.new_tensor(self.class_weight)
        return cross_entropy(
            pred, target, weight, class_weight, self.ignore_index, self.label_smoothing, reduction, avg_factor
        )


class SmoothL1Loss(_Loss):
    """Module form of `smooth_l1_loss`, times `loss_weight`."""

    def __init__(self, beta: float = 1.0, reduction: Reduction = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.beta = beta

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        return smooth_l1_loss(pred, target, weight, self.beta, reduction, avg_factor)


class L1Loss(_Loss):
    """Module form of `l1_loss`, times `loss_weight`."""

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        return l1_loss(pred, target, weight, reduction, avg_factor)


class GIoULoss(_Loss):
    """Module form of `giou_loss`, times `loss_weight`."""

    def __init__(self, eps: float = 1e-6, reduction: Reduction = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(reduction, loss_weight)
        self.eps = eps

    def _loss(
        self, pred: Tensor, target: Tensor, weight: Tensor | None, reduction: Reduction, avg_factor: AvgFactor
    ) -> Tensor:
        return giou_loss(pred, target, weight, self.eps, reduction, avg_factor)
