"""A convenience base for evaluation metrics.

What the engine requires of a metric is :class:`pc3d.plugin_api.MetricProtocol` (``reset``,
``update``, ``compute``) and, to be evaluated by several processes (``torchrun``),
:class:`pc3d.plugin_api.DistributedMetricProtocol` (``state``, ``merge``). :class:`Metric`
implements ``reset``, ``state`` and ``merge`` for the common case of a metric that keeps a list of
per-batch results and reduces it in ``compute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pc3d.plugin_api import DistributedMetricProtocol, MetricProtocol

__all__ = ["DistributedMetricProtocol", "Metric", "MetricProtocol"]


class Metric:
    """Base for metrics that append per-batch results to :attr:`results` in :meth:`update` and
    reduce them in :meth:`compute`; distributed gathering comes for free.

    Keep results small and on the CPU (numbers, small tensors moved with ``.cpu()``): they are
    pickled to rank 0's peers at the end of an evaluation.

    Attributes:
        results: What :meth:`update` appended since the last :meth:`reset`.
    """

    def __init__(self) -> None:
        self.results: list[Any] = []

    def reset(self) -> None:
        """Forget the results (called before each evaluation)."""
        self.results = []

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        """Append this batch's results to :attr:`results` (implemented by subclasses).

        Args:
            predictions: The model's ``predict`` output for the batch.
            batch: The collated batch it came from.
        """
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Reduce :attr:`results` to numbers by name (implemented by subclasses)."""
        raise NotImplementedError

    def state(self) -> list[Any]:
        """This rank's results (gathered across ranks by the engine)."""
        return self.results

    def merge(self, states: list[list[Any]]) -> None:
        """Replace the results by every rank's, in rank order.

        Args:
            states: One :meth:`state` per rank.
        """
        self.results = [item for state in states for item in state]
