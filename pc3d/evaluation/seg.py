"""Semantic segmentation metrics: per-class IoU and mIoU from a confusion matrix that is
accumulated over batches and summed across distributed ranks.

Protocol: MMDetection3D's ``seg_eval`` (used for ScanNet, S3DIS and SemanticKITTI), which is the
usual one for point-cloud segmentation:

* ``confusion[t, p]`` counts the points of ground-truth class ``t`` predicted as ``p``, over all
  points of all clouds (not averaged per cloud). Points whose ground truth is ``ignore_index``
  are left out.
* ``IoU_c = confusion[c, c] / (sum of row c + sum of column c - confusion[c, c])``, i.e.
  TP / (TP + FP + FN) over all points. A class that appears neither in the ground truth nor in
  the predictions has no IoU (NaN), and neither does the ignore index when it is a class index.
* ``mIoU`` is the mean of the per-class IoUs that are not NaN; ``acc`` the fraction of
  counted points predicted correctly; ``acc_cls`` the mean over classes present in the ground
  truth of their per-class accuracy (recall).

Where MMDetection3D silently drops ground-truth labels outside ``[0, num_classes)`` and lets
out-of-range predictions land in other classes' cells, pc3d raises an error naming the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.stats import nanmean


@dataclass(frozen=True)
class SegResult:
    """Segmentation scores (fractions).

    Attributes:
        iou: ``float64[K]`` per class (NaN: absent or ignored).
        miou: the mean IoU over the classes that are not NaN.
        acc: the fraction of points classified correctly.
        acc_cls: the mean per-class accuracy.
        names: the names of the K classes.
    """

    iou: np.ndarray
    miou: float
    acc: float
    acc_cls: float
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, float]:
        """MMDetection3D's keys: one per class name, then ``miou``, ``acc``, ``acc_cls``."""
        out = {name: float(v) for name, v in zip(self.names, self.iou, strict=True)}
        out.update(miou=self.miou, acc=self.acc, acc_cls=self.acc_cls)
        return out


def seg_scores(
    confusion: np.ndarray | Tensor, ignore_index: int | None = None, class_names: Sequence[str] | None = None
) -> SegResult:
    """Per-class IoU, mIoU and accuracies from a confusion matrix.

    Args:
        confusion: ``int[K, K]``, rows: ground truth, columns: prediction.
        ignore_index: a class left out of the mIoU (its IoU is NaN), if within ``[0, K)``.
        class_names: names of the K classes (default: their indices).

    Returns:
        The scores; classes without points have NaN IoU and are left out of the means.

    Raises:
        ShapeError: a matrix that is not square, or names not one per class.
    """
    conf = (
        confusion.detach().cpu().numpy() if isinstance(confusion, Tensor) else np.asarray(confusion)
    ).astype(np.float64)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ShapeError(f"confusion must be square, got shape {conf.shape}")
    k = conf.shape[0]
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise ShapeError(f"{len(names)} class names for {k} classes")
    tp = np.diag(conf)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (conf.sum(1) + conf.sum(0) - tp)
        per_class_acc = tp / conf.sum(1)
        acc = float(tp.sum() / conf.sum()) if conf.sum() else float("nan")
    if ignore_index is not None and 0 <= ignore_index < k:
        iou[ignore_index] = np.nan
    return SegResult(iou=iou, miou=nanmean(iou), acc=acc, acc_cls=nanmean(per_class_acc), names=names)


class SegConfusion:
    """A ``K x K`` confusion matrix (int64, on the device of the first update) accumulated over
    batches; summed over ranks with ``torch.distributed.all_reduce`` when a process group is
    initialised.

    Args:
        num_classes: K.
        ignore_index: ground-truth value whose points are not counted (may lie outside
            ``[0, K)``, e.g. -1 or 255); None counts every point.
        class_names: names of the K classes, for the results.
    """

    def __init__(
        self, num_classes: int, ignore_index: int | None = None, class_names: Sequence[str] | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ShapeError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else None
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        """Set every count to zero."""
        self.matrix = torch.zeros_like(self.matrix)

    def add(self, pred: Tensor, target: Tensor) -> None:
        """Count one batch of points.

        Args:
            pred: ``int[...]`` predicted class indices (e.g. ``Long[N]`` or ``Long[B, N]``).
            target: ground-truth class indices of the same shape.

        Raises:
            FormatError: not integer tensors, or a class outside ``0 .. K-1``.
            ShapeError: the shapes differ.
        """
        if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
            raise FormatError("pred and target must be tensors of class indices")
        if pred.shape != target.shape:
            raise ShapeError(f"pred has shape {tuple(pred.shape)} but target {tuple(target.shape)}")
        if pred.is_floating_point() or target.is_floating_point():
            raise FormatError(
                "pred and target must hold integer class indices, not floats "
                "(take argmax of the scores first)"
            )
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        k = self.num_classes
        for name, values in (("target", target), ("pred", pred)):
            bad = (values < 0) | (values >= k)
            if bool(bad.any()):
                value = int(values[bad][0])
                hint = "" if name == "pred" else f" (and is not the ignore index {self.ignore_index})"
                raise FormatError(f"{name} holds class {value}, outside 0..{k - 1}{hint}")
        if self.matrix.device != target.device:
            self.matrix = self.matrix.to(target.device)
        self.matrix += torch.bincount(target * k + pred, minlength=k * k).view(k, k)

    def reduced(self) -> Tensor:
        """The matrix summed over all ranks (a copy; the local counts are left as they are)."""
        total = self.matrix.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return total

    def result(self, sync: bool = True) -> SegResult:
        """Scores of everything counted (over all ranks when `sync` and a process group
        exists; every rank must call it then)."""
        matrix = self.reduced() if sync else self.matrix
        return seg_scores(matrix, self.ignore_index, self.class_names)


class SegMIoUMetric:
    """Segmentation IoU/mIoU as an engine metric (``registry.add_metric``).

    ``update(predictions, batch)`` takes one ``Long[N_i]`` of predicted classes per cloud (what
    the seg plugin's ``predict`` returns) and ``batch[labels_key]``, one ``Long[N_i]`` of
    ground-truth classes per cloud. ``compute()`` returns per-class IoUs by name and ``miou``,
    ``acc``, ``acc_cls``.

    Across ranks: the engine gathers ``state()`` (the confusion matrix) and calls ``merge``;
    used on its own under ``torch.distributed``, ``compute()`` sums the matrices with
    ``all_reduce`` instead (every rank must call it).

    Args:
        num_classes: K.
        ignore_index: ground-truth value not counted (default -1).
        class_names: names of the K classes.
        labels_key: the batch key of the ground truth.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = -1,
        class_names: Sequence[str] | None = None,
        labels_key: str = "labels",
    ) -> None:
        self.confusion = SegConfusion(num_classes, ignore_index, class_names)
        self.labels_key = labels_key
        self._merged = False

    def reset(self) -> None:
        """Forget every count."""
        self.confusion.reset()
        self._merged = False

    def update(self, predictions: Sequence[Tensor] | Tensor, batch: Mapping[str, Any]) -> None:
        """Count one batch: one prediction per cloud against ``batch[labels_key]``.

        Raises:
            FormatError: the batch has no labels.
            ShapeError: as many predictions as label tensors are needed.
        """
        if self.labels_key not in batch:
            raise FormatError(f"SegMIoUMetric: the batch has no {self.labels_key!r} (keys: {sorted(batch)})")
        targets = batch[self.labels_key]
        if isinstance(predictions, Tensor):
            predictions, targets = [predictions], [targets]
        if len(predictions) != len(targets):
            raise ShapeError(
                f"SegMIoUMetric: {len(predictions)} predictions for {len(targets)} label tensors"
            )
        for pred, target in zip(predictions, targets, strict=True):
            self.confusion.add(pred, target)

    def names(self) -> list[str]:
        """The keys :meth:`compute` returns, known before any evaluation (checked against
        ``train.best_metric``)."""
        confusion = self.confusion
        classes = confusion.class_names or tuple(str(i) for i in range(confusion.num_classes))
        return [*classes, "miou", "acc", "acc_cls"]

    def compute(self) -> dict[str, float]:
        """Per-class IoU by name, ``miou``, ``acc`` and ``acc_cls``."""
        # After `merge` the matrix already holds every rank's counts.
        return self.confusion.result(sync=not self._merged).to_dict()

    def state(self) -> np.ndarray:
        """This rank's confusion matrix, for gathering across ranks."""
        return self.confusion.matrix.cpu().numpy()

    def merge(self, states: list[np.ndarray]) -> None:
        """Sum the gathered matrices of every rank (replacing this rank's own)."""
        total = np.sum(np.stack(states), axis=0)
        self.confusion.matrix = torch.from_numpy(total).to(self.confusion.matrix.device)
        self._merged = True


__all__ = ["SegConfusion", "SegMIoUMetric", "SegResult", "seg_scores"]
