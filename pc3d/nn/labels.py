"""The one check of ground-truth class labels, shared by every head that trains on them, and the
one check of a model's class names against its head's class count."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pc3d.errors import FormatError

__all__ = ["check_labels", "model_class_names"]


def model_class_names(
    class_names: Sequence[str] | None, num_classes: int, num_classes_key: str = "model.head.num_classes"
) -> list[str]:
    """A model's classes by label index (what its outputs, checkpoints and ``pc3d infer`` name).

    Args:
        class_names: the config's ``model.class_names`` (``${class_names}``), or None.
        num_classes: the classes its head predicts.
        num_classes_key: where ``num_classes`` is set, named in the error.

    Returns:
        ``class_names`` as a list, or ``"0"``, ``"1"``, ... for ``num_classes`` without it.

    Raises:
        FormatError: another count than ``num_classes`` (``--set class_names=[car]`` on a
            3-class head), or a name listed twice.
    """
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise FormatError(
            f"model.class_names lists {len(names)} classes ({', '.join(names)}) but {num_classes_key} "
            f"is {num_classes}; set {num_classes_key} to {len(names)}"
        )
    if len(set(names)) != len(names):
        raise FormatError(f"model.class_names lists a class twice: {names}")
    return names


def check_labels(
    labels: Tensor | Sequence[Tensor],
    num_classes: int,
    num_classes_key: str,
    name: str = "gt_labels",
    ignore_index: int | None = None,
) -> None:
    """Check a batch's class labels with one min/max reduction (one device sync).

    A label equal to ``num_classes`` would otherwise be read as background by focal and
    cross-entropy targets, and a larger one fails deep inside a loss without saying which setting
    is wrong; the message names the config key where ``num_classes`` is set.

    Args:
        labels: the batch's labels, one tensor or one per sample.
        num_classes: the number of classes.
        num_classes_key: where ``num_classes`` is set (e.g. ``model.head.num_classes``).
        name: the labels' name in the message.
        ignore_index: a label value that is allowed and means "ignore".

    Raises:
        FormatError: ``gt_labels must lie in [0, 3) = [0, num_classes) (model.head.num_classes);
            got 5 in the batch`` (or float labels).
    """
    if not isinstance(labels, Tensor):
        labels = (
            torch.cat([lab.reshape(-1) for lab in labels])
            if len(labels)
            else torch.zeros(0, dtype=torch.long)
        )
    labels = labels.reshape(-1)
    if labels.numel() == 0:
        return
    if labels.is_floating_point():
        raise FormatError(f"{name} must be integer class indices, got {labels.dtype}")
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() == 0:
        return
    low, high = (int(v) for v in torch.stack(torch.aminmax(valid)).tolist())
    if low >= 0 and high < num_classes:
        return
    bad = valid[(valid < 0) | (valid >= num_classes)].unique().tolist()
    ignored = "" if ignore_index is None else f" or be {ignore_index} (ignored)"
    raise FormatError(
        f"{name} must lie in [0, {num_classes}) = [0, num_classes) ({num_classes_key}){ignored}; got "
        f"{', '.join(map(str, bad))} in the batch"
    )
