"""A run's length and cadence: how many optimizer steps, and when to evaluate and checkpoint.

``schedule`` gives the length in epochs or iterations (exactly one); ``train.eval_every`` and
``train.checkpoint_every`` count in the same unit and default to once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pc3d.config import ConfigError
from pc3d.engine.schema import RunSpec

__all__ = ["RunPlan", "plan_run"]


@dataclass(frozen=True)
class RunPlan:
    """How long a run is and when it evaluates and checkpoints.

    Attributes:
        by_epoch: the schedule counts epochs (else iterations).
        max_iters: optimizer steps in the whole run.
        eval_every: evaluate every this many epochs (``by_epoch``) or iterations.
        checkpoint_every: write a periodic checkpoint every this many epochs or iterations.
    """

    by_epoch: bool
    max_iters: int
    eval_every: int
    checkpoint_every: int


def plan_run(spec: RunSpec, iters_per_epoch: int) -> RunPlan:
    """The run's length and cadence from its ``schedule`` and ``train`` sections.

    Unset ``eval_every`` / ``checkpoint_every`` mean once per epoch (for an iteration schedule:
    every ``iters_per_epoch`` iterations).

    Raises:
        ConfigError: both or neither of ``epochs`` / ``iterations``, or a count below 1.
    """
    schedule, train = spec.schedule, spec.train
    if (schedule.epochs is None) == (schedule.iterations is None):
        raise ConfigError("schedule: give exactly one of 'epochs' and 'iterations'")
    by_epoch = schedule.epochs is not None
    length = schedule.epochs if schedule.epochs is not None else schedule.iterations
    assert length is not None
    if length < 1:
        raise ConfigError(f"schedule.{'epochs' if by_epoch else 'iterations'}: must be at least 1")
    for key in ("eval_every", "checkpoint_every", "log_every"):
        value = getattr(train, key)
        if value is not None and value < 1:
            raise ConfigError(f"train.{key}: must be at least 1, got {value}")
    if train.keep_last is not None and train.keep_last < 1:
        raise ConfigError("train.keep_last: must be at least 1 (or null to keep all)")
    once_per_epoch = 1 if by_epoch else iters_per_epoch
    return RunPlan(
        by_epoch=by_epoch,
        max_iters=length * iters_per_epoch if by_epoch else length,
        eval_every=train.eval_every or once_per_epoch,
        checkpoint_every=train.checkpoint_every or once_per_epoch,
    )
