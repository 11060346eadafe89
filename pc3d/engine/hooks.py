"""Training hooks: plugin code called at fixed points of the training loop.

A plugin registers a hook class with ``registry.add_train_hook(MyHook)``; a config switches it on
under ``train.hooks`` (``- type: MyHook`` plus its constructor's arguments). Hooks run on every
rank, in the order the config lists them; use ``trainer.dist.is_main`` to act on rank 0 only.

Every method is optional::

    before_train(trainer)              # once, after building and resuming, before the first step
    before_epoch(trainer)              # trainer.epoch is the epoch starting (0-based)
    before_iter(trainer)               # trainer.iteration is the number of completed steps
    after_iter(trainer, outputs)       # outputs: the step's losses as floats, plus "lr"
    after_epoch(trainer)               # after evaluation and checkpointing for that epoch
    after_train(trainer)               # once, after the final checkpoint
    state_dict() -> dict               # saved in checkpoints, for exact resume
    load_state_dict(state) -> None

What a hook may use on ``trainer``: ``model`` (the plugin's model, unwrapped), ``optimizer``,
``scheduler``, ``epoch``, ``iteration``, ``max_iters``, ``iters_per_epoch``, ``work_dir``,
``dist``, ``config`` and ``log(values)`` to add scalars to the log. A hook that changes the
learning rate in ``before_iter`` sees its change overwritten by the scheduler's next step
unless it also adjusts ``trainer.scheduler`` (an extra schedule belongs in ``after_iter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["HOOK_METHODS", "HookList"]

HOOK_METHODS: tuple[str, ...] = (
    "before_train",
    "before_epoch",
    "before_iter",
    "after_iter",
    "after_epoch",
    "after_train",
)


class HookList:
    """The configured hooks, called in order. An exception from a hook propagates with a note
    naming the hook and the method."""

    def __init__(self, hooks: Sequence[Any], names: Sequence[str] | None = None) -> None:
        self.hooks = list(hooks)
        self.names = list(names) if names is not None else [type(h).__name__ for h in self.hooks]
        unknown = [
            (name, attr)
            for hook, name in zip(self.hooks, self.names)
            for attr in dir(hook)
            if _looks_like_typo(attr)
        ]
        if unknown:
            # A misspelt method would silently never run.
            name, attr = unknown[0]
            raise TypeError(
                f"train hook {name} defines '{attr}', which is not a hook method; hook methods: "
                f"{', '.join(HOOK_METHODS)}"
            )

    def call(self, method: str, trainer: Any, *args: Any) -> None:
        for hook, name in zip(self.hooks, self.names):
            function = getattr(hook, method, None)
            if function is None:
                continue
            try:
                function(trainer, *args)
            except Exception as err:
                err.add_note(f"in train hook {name}.{method} (iteration {trainer.iteration})")
                raise

    def state_dict(self) -> dict[str, Any]:
        return {
            f"{index}:{name}": hook.state_dict()
            for index, (hook, name) in enumerate(zip(self.hooks, self.names))
            if callable(getattr(hook, "state_dict", None))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for index, (hook, name) in enumerate(zip(self.hooks, self.names)):
            key = f"{index}:{name}"
            if key in state and callable(getattr(hook, "load_state_dict", None)):
                hook.load_state_dict(state[key])


def _looks_like_typo(attr: str) -> bool:
    if attr.startswith("_") or attr in HOOK_METHODS:
        return False
    if not (attr.startswith("before_") or attr.startswith("after_")):
        return False
    return True
