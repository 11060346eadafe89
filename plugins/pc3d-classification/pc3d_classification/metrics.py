"""Top-k classification accuracy, registered with ``add_metric``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from pc3d.engine.metric import Metric
from pc3d.errors import FormatError, ShapeError


class TopKAccuracy(Metric):
    """Share of samples whose true class is among the ``k`` highest-scoring classes, for each
    ``k`` in ``topk``: ``compute() -> {"top1": 0.97, "top5": 0.999}`` (fractions in [0, 1]).

    ``update(predictions, batch)`` takes the classifier's ``predict`` output (a mapping with
    ``"scores"`` or ``"logits"``, ``Tensor[B, K]``, or that tensor itself) and the batch's
    ``labels`` (``Long[B]``). Each batch appends its per-``k`` hit counts and size, so merging
    ranks' states (the engine's :class:`~pc3d.engine.metric.Metric`) gives exactly the
    one-process result. Ties at the k-th score are broken by ``torch.topk``'s order.

    Args:
        topk: the ``k`` values, each at least 1 and at most the number of classes.
        prefix: prepended to the result names (e.g. ``"val_"``).

    Raises:
        FormatError: ``topk`` values that are not positive ints.
    """

    def __init__(self, topk: Sequence[int] = (1, 5), prefix: str = "") -> None:
        super().__init__()
        ks = [topk] if isinstance(topk, int) else list(topk)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise FormatError(f"TopKAccuracy topk must be positive ints, got {topk!r}")
        self.topk = tuple(sorted(set(ks)))
        self.prefix = prefix

    @staticmethod
    def _scores(predictions: Any) -> Tensor:
        if isinstance(predictions, Tensor):
            return predictions
        if isinstance(predictions, Mapping):
            for key in ("scores", "logits"):
                if isinstance(predictions.get(key), Tensor):
                    return predictions[key]
        raise FormatError(
            "TopKAccuracy needs predictions with 'scores' or 'logits' (Tensor[B, K]), got "
            + (
                f"keys {list(predictions)}"
                if isinstance(predictions, Mapping)
                else type(predictions).__name__
            )
        )

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        """Count a batch's hits.

        Raises:
            FormatError: predictions without scores or a batch without ``labels``.
            ShapeError: scores and labels that do not match, or fewer classes than the largest k.
        """
        scores = self._scores(predictions)
        if "labels" not in batch:
            raise FormatError(f"TopKAccuracy needs 'labels' in the batch, which has {list(batch)}")
        labels = batch["labels"]
        if scores.ndim != 2 or not isinstance(labels, Tensor) or labels.shape != scores.shape[:1]:
            raise ShapeError(
                f"TopKAccuracy: expected scores Tensor[B, K] and labels Long[B], got "
                f"{tuple(scores.shape)} and {tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}"
            )
        if self.topk[-1] > scores.shape[1]:
            raise ShapeError(
                f"TopKAccuracy: top-{self.topk[-1]} asked for, but there are only {scores.shape[1]} classes"
            )
        ranked = scores.topk(self.topk[-1], dim=1).indices  # Long[B, kmax], best first
        hit = ranked == labels.to(ranked.device).long()[:, None]  # Bool[B, kmax], at most one True per row
        hits = [int(hit[:, :k].any(dim=1).sum()) for k in self.topk]
        self.results.append((hits, int(labels.shape[0])))

    def names(self) -> list[str]:
        """The keys :meth:`compute` returns (checked against ``train.best_metric``)."""
        return [f"{self.prefix}top{k}" for k in self.topk]

    def compute(self) -> dict[str, float]:
        """``{prefix + "top<k>": fraction}`` over every sample counted.

        Raises:
            FormatError: no sample was counted.
        """
        total = sum(n for _, n in self.results)
        if total == 0:
            raise FormatError("TopKAccuracy: no samples were evaluated (empty dataset?)")
        sums = torch.tensor([hits for hits, _ in self.results], dtype=torch.float64).sum(dim=0)
        return {f"{self.prefix}top{k}": float(s) / total for k, s in zip(self.topk, sums.tolist())}
