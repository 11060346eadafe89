"""The evaluation pass: ``predict`` over this rank's shard, metrics fed and gathered across ranks.

Metrics follow the contract in :mod:`pc3d.engine.metric`. Evaluation draws from copies of the
random generators, so evaluating during training does not change what training draws next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader

from pc3d.config import ConfigError
from pc3d.engine.adapter import ModelAdapter, check_batch
from pc3d.engine.dist import DistInfo
from pc3d.engine.loaders import move_to_device
from pc3d.engine.logging import terminal_progress
from pc3d.engine.seed import preserved_rng
from pc3d.errors import Pc3dError

__all__ = ["RESERVED_RESULT_KEYS", "check_metrics_gatherable", "evaluate"]

#: Keys a metric result may not use (they label the record in metrics.jsonl / --json).
RESERVED_RESULT_KEYS = ("epoch", "iteration", "checkpoint", "time", "kind", "split", "num_samples")


def check_metrics_gatherable(metrics: Sequence[Any]) -> None:
    """Check that every metric can be gathered across processes (``state()`` / ``merge()``).

    Raises:
        ConfigError: a metric lacks one of the two methods.
    """
    for metric in metrics:
        if not (callable(getattr(metric, "state", None)) and callable(getattr(metric, "merge", None))):
            raise ConfigError(
                f"metric {type(metric).__name__} has no state()/merge(): it cannot be "
                "gathered across processes (derive it from pc3d.engine.metric.Metric)"
            )


def evaluate(
    adapter: ModelAdapter,
    loader: DataLoader,
    metrics: Sequence[Any],
    dist: DistInfo,
    *,
    autocast: AbstractContextManager[Any] | None = None,
    progress: str | None = None,
) -> dict[str, float]:
    """Run ``predict`` over ``loader`` and return every metric's results by name.

    Args:
        adapter: the model behind its adapter (put in eval mode for the pass, then restored).
        loader: this rank's shard (:func:`pc3d.engine.loaders.make_eval_loader`).
        metrics: metric objects; reset first, their state gathered across ranks at the end.
        dist: this process's place in the run.
        autocast: a mixed-precision context for the forward passes, if any.
        progress: the label of a progress bar over the batches (rank 0 shows it on stderr when
            stderr is a terminal, and removes it when done); None shows none.

    Returns:
        ``{name: value}`` of all metrics, identical on every rank.

    Raises:
        Pc3dError: a metric's ``compute()`` is not a mapping, or two metrics (or a metric and a
            record label such as ``epoch``) use the same name.
    """
    was_training = adapter.training
    adapter.eval()
    for metric in metrics:
        metric.reset()
    try:
        with torch.no_grad(), preserved_rng(dist.device), autocast or nullcontext():
            for batch in terminal_progress(loader, progress if dist.is_main else None):
                batch = check_batch(move_to_device(batch, dist.device), "evaluation")
                predictions = adapter(batch, mode="predict")
                for metric in metrics:
                    metric.update(predictions, batch)
    finally:
        adapter.train(was_training)
    results: dict[str, float] = {}
    for metric in metrics:
        if dist.distributed:
            metric.merge(dist.all_gather_object(metric.state()))
        computed = metric.compute()
        if not isinstance(computed, Mapping):
            raise Pc3dError(
                f"metric {type(metric).__name__}.compute() returned {type(computed).__name__}, "
                "expected a dict of name -> number"
            )
        for name, value in computed.items():
            if name in results or name in RESERVED_RESULT_KEYS:
                raise Pc3dError(
                    f"metric {type(metric).__name__} returns '{name}', which "
                    + ("another metric also returns" if name in results else "is a reserved key")
                )
            results[str(name)] = float(value)
    return results
