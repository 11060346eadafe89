"""Checking config values against Python type hints: the one implementation.

Used for the keyword arguments of components (against their constructors' annotations, see
:mod:`pc3d.config.building`) and for the engine's sections (against dataclasses, see
:mod:`pc3d.engine.schema`). :func:`conform` returns the value, converted where YAML and Python
differ (an integer where a float is expected, a mapping where a dataclass is expected).

Checked: ``bool``, ``int`` (not ``bool``), ``float`` (``int`` accepted), ``str``, ``None``,
unions, ``Literal``, ``list``/``tuple``/``Sequence`` (item by item), ``dict``/``Mapping``,
dataclasses (key by key), ``Annotated`` (its first argument, then any :class:`Range` among its
extras: ``Annotated[int, Range(min=1)]``), and classes (``isinstance``). Anything else (``Any``,
type variables, protocols that are not runtime-checkable) is accepted.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pc3d.config.keys import ConfigError, dotted
from pc3d.config.node import ConfigNode
from pc3d.errors import did_you_mean

__all__ = ["Range", "conform", "describe_value", "hint_name", "to_dataclass"]

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_UNIONS = (typing.Union, types.UnionType)
_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds on a number, written next to its type: ``batch_size: Annotated[int, Range(min=1)]``.

    A value outside is a :class:`ConfigError` at its key (``data.train.batch_size (from
    x.yaml:7): must be at least 1, got 0``), for the engine's sections and for components'
    constructor arguments alike.

    Attributes:
        min: The lowest value allowed (``None``: no lower bound).
        max: The highest value allowed (``None``: no upper bound).
        min_open: ``min`` itself is not allowed (``Range(min=0, min_open=True)``: more than 0).
        max_open: ``max`` itself is not allowed.
    """

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds (NaN never does)."""
        if value != value:
            return False
        if self.min is not None and (value <= self.min if self.min_open else value < self.min):
            return False
        return self.max is None or (value < self.max if self.max_open else value <= self.max)

    def describe(self) -> str:
        """``at least 1``, ``more than 0``, ``in (0, 1]``..., as errors say it."""
        if self.min is not None and self.max is not None:
            return (
                f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}{')' if self.max_open else ']'}"
            )
        if self.min is not None:
            return f"{'more than' if self.min_open else 'at least'} {self.min:g}"
        if self.max is not None:
            return f"{'less than' if self.max_open else 'at most'} {self.max:g}"
        return "any number"


class _Mismatch(Exception):
    """The value does not fit the hint; reported at the enclosing :func:`conform` call."""


def describe_value(value: Any) -> str:
    """``"a mapping"``, ``"a list"``, ``"a string"``, ``"an int"``, ``"null"`` ... for messages."""
    if value is None:
        return "null"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a bool", int: "an int"}
    return names.get(type(value), f"a {type(value).__name__}")


def hint_name(hint: Any, *, words: bool = False) -> str:
    """How an error names a type hint.

    Args:
        hint: The type hint.
        words: Say it in YAML words (``an integer``, ``true or false``, ``a mapping``) rather than
            as the annotation is written (``int``, ``Sequence[int]``, ``str | None``).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return hint_name(args[0], words=words)
    if not words:
        if inspect.isclass(hint) and not args:
            return hint.__name__
        return re.sub(r"\b(typing|collections\.abc|builtins)\.", "", str(hint)).replace("NoneType", "None")
    if origin in _UNIONS:
        names = [hint_name(a, words=True) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if dataclasses.is_dataclass(hint) or origin in _MAPPINGS or hint in _MAPPINGS:
        return "a mapping"
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return "a list"
    if isinstance(hint, type) and hint in _WORDS:
        return _WORDS[hint]
    return getattr(hint, "__name__", str(hint))


def conform(node: ConfigNode, hint: Any, *, words: bool = False) -> Any:
    """Check ``node.value`` against ``hint`` and return it, converted where needed.

    Args:
        node: The value and its key path (named in errors).
        hint: The type hint; ``None`` means "not annotated" (anything goes).
        words: Name expected types in YAML words (see :func:`hint_name`).

    Returns:
        The value: floats for ``float`` hints, dataclass instances for dataclass hints, lists and
        mappings rebuilt with their items converted; otherwise the value itself.

    Raises:
        ConfigError: The value does not fit: ``model.head.num_classes (from x.yaml:3): expected
            int, got a string 'three'``; a value inside a list is reported at the list.
    """
    if hint is None:
        return node.value
    try:
        return _conform(node, hint, words)
    except _Mismatch:
        raise ConfigError(
            f"{node.where()}: expected {hint_name(hint, words=words)}, got "
            f"{describe_value(node.value)} {_short_repr(node.value)}"
        ) from None


def to_dataclass(node: ConfigNode, cls: type, *, words: bool = True) -> Any:
    """Build dataclass ``cls`` from the mapping at ``node``, checking every key and value.

    Args:
        node: A mapping (or ``null``, read as an empty mapping).
        cls: The dataclass; its fields' type hints are checked with :func:`conform`.
        words: Name expected types in YAML words.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: Not a mapping, an unknown key (with a "did you mean" and the accepted keys),
            a missing required key, or a value of the wrong type.
    """
    value = {} if node.value is None else node.value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{node.where()}: expected a mapping, got {describe_value(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in value:
        if key not in fields:
            section = dotted(node.path) if node.path else "the config"
            raise ConfigError(
                f"{node.where(str(key))}: unknown key '{key}'{did_you_mean(str(key), fields)}; "
                f"{section} accepts: {', '.join(fields)}"
            )
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in value:
            kwargs[name] = conform(node.with_value(value).child(name), hints[name], words=words)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{node.where(name)}: required key '{name}' is missing")
    return cls(**kwargs)


def _conform(node: ConfigNode, hint: Any, words: bool) -> Any:
    value = node.value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin is typing.Annotated:
        conformed = _conform(node, args[0], words)
        for bounds in (extra for extra in hint.__metadata__ if isinstance(extra, Range)):
            if isinstance(conformed, (int, float)) and not bounds.contains(conformed):
                raise ConfigError(f"{node.where()}: must be {bounds.describe()}, got {conformed!r}")
        return conformed
    if origin in _UNIONS:
        return _union(node, args, words)
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is Literal:
        return _literal(node, args)
    if isinstance(hint, type) and hint in _WORDS:
        return _scalar(value, hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return to_dataclass(node, hint, words=words)
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return _sequence(node, origin, args, words)
    if origin in _MAPPINGS or hint in _MAPPINGS:
        if not isinstance(value, Mapping):
            raise _Mismatch
        return dict(value)
    if inspect.isclass(hint):
        try:
            matches = isinstance(value, hint)
        except TypeError:  # e.g. a Protocol that is not runtime-checkable
            return value
        if not matches:
            raise _Mismatch
    return value


def _scalar(value: Any, hint: type) -> Any:
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, hint):
        return value
    raise _Mismatch


def _union(node: ConfigNode, args: tuple[Any, ...], words: bool) -> Any:
    if node.value is None and type(None) in args:
        return None
    located: list[ConfigError] = []
    for option in (a for a in args if a is not type(None)):
        try:
            return _conform(node, option, words)
        except _Mismatch:
            continue
        except ConfigError as err:  # a mapping meant as a dataclass, with an error inside it
            located.append(err)
    if located:
        raise located[0]
    raise _Mismatch


def _literal(node: ConfigNode, args: tuple[Any, ...]) -> Any:
    value = node.value
    if any(value == a and type(value) is type(a) for a in args):
        return value
    raise ConfigError(
        f"{node.where()}: {value!r} is not one of {', '.join(map(str, args))}"
        f"{did_you_mean(str(value), map(str, args))}"
    )


def _sequence(node: ConfigNode, origin: Any, args: tuple[Any, ...], words: bool) -> Any:
    value = node.value
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if origin is tuple and args and not (len(args) == 2 and args[1] is ...):
        if len(args) != len(value):
            raise _Mismatch
        item_hints = list(args)
    elif args:
        item_hints = [args[0]] * len(value)
    else:
        return value
    items = [_conform(node.child(i), h, words) for i, h in enumerate(item_hints)]
    return type(value)(items)


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
