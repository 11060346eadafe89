"""The model side of the engine: how a batch reaches a plugin's model and what comes back.

The model contract is ``pc3d.plugin_api.ModelProtocol``: ``loss(**batch) -> dict[str, Tensor]``
and, to be evaluated, ``predict(**batch)``; each method receives the batch keys its signature
names. :class:`ModelAdapter` turns the two into one ``forward(batch, mode)``, which is what
``DistributedDataParallel`` wraps, so gradient synchronisation works without the model knowing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.config import ConfigError
from pc3d.errors import Pc3dError

__all__ = ["ModelAdapter", "check_batch", "check_trainable", "total_loss"]


class _BatchCall:
    """Calls ``method(**batch)`` with the batch keys its signature names."""

    def __init__(self, method: Callable[..., Any], label: str) -> None:
        self.method = method
        self.label = label
        params = inspect.signature(method).parameters.values()
        self.takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        named = [
            p
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        self.names = [p.name for p in named]
        self.required = [p.name for p in named if p.default is inspect.Parameter.empty]

    def __call__(self, batch: Mapping[str, Any]) -> Any:
        missing = [name for name in self.required if name not in batch]
        if missing:
            raise Pc3dError(
                f"{self.label} needs {', '.join(repr(m) for m in missing)} but the batch has "
                f"only {', '.join(repr(k) for k in batch) or 'no keys'}; the dataset (or its "
                "collate) must provide them"
            )
        if self.takes_all:
            return self.method(**batch)
        return self.method(**{name: batch[name] for name in self.names if name in batch})


class ModelAdapter(nn.Module):
    """``forward(batch, mode)`` -> ``model.loss(**batch)`` or ``model.predict(**batch)``.

    The wrapped model is ``self.model``; its state dict is what checkpoints store.

    Args:
        model: the plugin's model.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        name = type(model).__name__
        self._calls: dict[str, _BatchCall] = {}
        for mode in ("loss", "predict"):
            method = getattr(model, mode, None)
            if callable(method):
                self._calls[mode] = _BatchCall(method, f"{name}.{mode}()")

    def supports(self, mode: str) -> bool:
        """Whether the model has the method ``mode`` (``"loss"`` or ``"predict"``)."""
        return mode in self._calls

    def forward(self, batch: Mapping[str, Any], mode: str = "loss") -> Any:
        """Call the model's ``mode`` method with the batch keys it names.

        Raises:
            Pc3dError: the model has no such method, or the batch lacks a key it requires.
        """
        call = self._calls.get(mode)
        if call is None:
            raise Pc3dError(
                f"model {type(self.model).__name__} has no {mode}() method; the engine trains "
                "models with loss(**batch) -> dict of losses and evaluates them with "
                "predict(**batch) (see docs/engine.md)"
            )
        return call(batch)


def check_trainable(adapter: ModelAdapter, *, needs_predict: bool) -> None:
    """Check that the model can be trained (and evaluated, when ``needs_predict``).

    Raises:
        ConfigError: the model lacks ``loss()`` (or ``predict()`` where metrics need it).
    """
    name = type(adapter.model).__name__
    if not adapter.supports("loss"):
        raise ConfigError(
            f"model {name} has no loss() method; the engine trains models with loss(**batch) -> "
            "dict of losses (see docs/engine.md)"
        )
    if needs_predict and not adapter.supports("predict"):
        raise ConfigError(f"model {name} has no predict() method, needed to evaluate metrics")


def check_batch(batch: Any, where: str) -> Mapping[str, Any]:
    """``batch`` itself when it is a mapping of argument names to values.

    Args:
        batch: what the data loader yielded.
        where: the config section the loader came from, for the message (``data.train``).

    Raises:
        Pc3dError: the batch is not a mapping.
    """
    if not isinstance(batch, Mapping):
        raise Pc3dError(
            f"{where}: a batch must be a mapping of argument names to values (e.g. "
            f"{{'points': ..., 'gt_boxes': ...}}), got {type(batch).__name__}; make the dataset "
            "return dicts or give it a collate that builds one"
        )
    return batch


def total_loss(losses: Any, model_name: str) -> tuple[Tensor, dict[str, float]]:
    """The loss to back-propagate, and every returned entry as a float for the log.

    Args:
        losses: what ``model.loss()`` returned: a mapping of names to scalar tensors (numbers
            are logged only). ``"loss"`` is the total; without it, the tensors are summed.
        model_name: the model's class name, for messages.

    Returns:
        The scalar total (with its graph) and ``{name: value}`` including ``"loss"``.

    Raises:
        Pc3dError: not a mapping, a non-scalar tensor, a value of another type, no tensor.
    """
    name = f"{model_name}.loss()"
    if not isinstance(losses, Mapping) or not losses:
        raise Pc3dError(f"{name} returned {type(losses).__name__}, expected a dict of name -> scalar loss")
    values: dict[str, float] = {}
    tensors: dict[str, Tensor] = {}
    for key, value in losses.items():
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise Pc3dError(
                    f"{name} returned '{key}' of shape {tuple(value.shape)}; losses must be scalars"
                )
            tensors[str(key)] = value
            values[str(key)] = float(value.detach().float().item())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            values[str(key)] = float(value)  # logged only
        else:
            raise Pc3dError(f"{name} returned '{key}' as {type(value).__name__}, expected a tensor")
    if "loss" in tensors:
        total = tensors["loss"]
    elif tensors:
        total = torch.stack([t.reshape(()).float() for t in tensors.values()]).sum()
        values["loss"] = float(total.detach().item())
    else:
        raise Pc3dError(f"{name} returned no tensors to back-propagate")
    return total.reshape(()), values
