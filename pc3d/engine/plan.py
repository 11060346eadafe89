"""A run's length and cadence: how many optimizer steps, and when to evaluate and checkpoint.

``schedule`` gives the length in epochs or iterations (exactly one); ``train.eval_every`` and
``train.checkpoint_every`` count in the same unit and default to once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from pc3d.config import ConfigError
from pc3d.engine.schema import RunSpec, ScheduleSpec

__all__ = ["RunPlan", "plan_run", "schedule_length"]


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
        ConfigError: both or neither of ``epochs`` / ``iterations``.
    """
    train = spec.train
    by_epoch, length = schedule_length(spec.schedule)
    once_per_epoch = 1 if by_epoch else iters_per_epoch
    return RunPlan(
        by_epoch=by_epoch,
        max_iters=length * iters_per_epoch if by_epoch else length,
        eval_every=train.eval_every or once_per_epoch,
        checkpoint_every=train.checkpoint_every or once_per_epoch,
    )


def schedule_length(schedule: ScheduleSpec) -> tuple[bool, int]:
    """Whether ``schedule`` counts epochs (else iterations), and how many.

    Raises:
        ConfigError: both or neither of ``epochs`` / ``iterations`` (the counts' bounds are the
            schema's).
    """
    if schedule.epochs is not None and schedule.iterations is None:
        return True, schedule.epochs
    if schedule.iterations is not None and schedule.epochs is None:
        return False, schedule.iterations
    raise ConfigError("schedule: give exactly one of 'epochs' and 'iterations'")
