"""Calls the configured training hooks at fixed points of the loop.

What a hook implements is :class:`pc3d.plugin_api.TrainHookProtocol` (the loop methods, each
optional) and, to be saved in checkpoints, :class:`pc3d.plugin_api.StatefulTrainHookProtocol`. A
plugin registers a hook class with ``registry.add_train_hook(MyHook)``; a config switches it on
under ``train.hooks`` (``- type: MyHook`` plus its constructor's arguments). Hooks run on every
rank, in the order the config lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pc3d.plugin_api import TRAIN_HOOK_METHODS

__all__ = ["HOOK_METHODS", "HookList"]

#: The loop methods a hook may define (:data:`pc3d.plugin_api.TRAIN_HOOK_METHODS`).
HOOK_METHODS: tuple[str, ...] = TRAIN_HOOK_METHODS


class HookList:
    """The configured hooks, called in order. An exception from a hook propagates with a note
    naming the hook and the method.

    Args:
        hooks: Objects with any of the :class:`~pc3d.plugin_api.TrainHookProtocol` methods.
        names: Their names for messages and checkpoint keys (default: their class names).

    Raises:
        TypeError: A hook defines a ``before_*``/``after_*`` method that is not a hook method.
    """

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
        """Call ``method(trainer, *args)`` on every hook that has it, in order.

        Args:
            method: One of :data:`HOOK_METHODS`.
            trainer: The trainer the hooks may read.
            *args: Further arguments (``after_iter``'s outputs).
        """
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
        """The states of the hooks that have one, keyed ``"<index>:<name>"``."""
        return {
            f"{index}:{name}": hook.state_dict()
            for index, (hook, name) in enumerate(zip(self.hooks, self.names))
            if callable(getattr(hook, "state_dict", None))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Give each stateful hook its entry of ``state`` (from :meth:`state_dict`)."""
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
