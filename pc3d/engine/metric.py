"""The contract between the engine and evaluation metrics (registered with ``add_metric``).

A metric is an object with::

    reset() -> None                          # forget everything (called before each evaluation)
    update(predictions, batch) -> None       # one batch: the model's ``predict`` output and the
                                             # collated batch it came from (ground truth inside)
    compute() -> dict[str, float]            # the results, by metric name

and, to be evaluated by several processes (``torchrun``), two more::

    state() -> Any                           # this rank's accumulated state, picklable
    merge(states: list[Any]) -> None         # replace the state by all ranks' states (rank order)

The engine calls ``state()`` on every rank, gathers the list across ranks, calls ``merge`` with
it on every rank and then ``compute()``: each sample is evaluated once (evaluation shards are not
padded), so merged results equal a single-process evaluation.

:class:`Metric` implements ``reset``, ``state`` and ``merge`` for the common case of a metric
that keeps a list of per-batch results and reduces it in ``compute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Metric", "MetricProtocol"]


@runtime_checkable
class MetricProtocol(Protocol):
    def reset(self) -> None: ...

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Metric:
    """Base for metrics that append per-batch results to :attr:`results` in :meth:`update` and
    reduce them in :meth:`compute`; distributed gathering comes for free.

    Keep results small and on the CPU (numbers, small tensors moved with ``.cpu()``): they are
    pickled to rank 0's peers at the end of an evaluation.
    """

    def __init__(self) -> None:
        self.results: list[Any] = []

    def reset(self) -> None:
        self.results = []

    def update(self, predictions: Any, batch: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def state(self) -> list[Any]:
        return self.results

    def merge(self, states: list[list[Any]]) -> None:
        self.results = [item for state in states for item in state]
