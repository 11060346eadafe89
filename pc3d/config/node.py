"""A resolved config (:class:`Config`) and a value inside it that knows its key path
(:class:`ConfigNode`), so every error can name the key and the file and line it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pc3d.config.dumping import render_yaml
from pc3d.config.keys import ConfigError, KeyPath, dotted, lookup, split_key
from pc3d.errors import did_you_mean

__all__ = ["Config", "ConfigNode"]

_MISSING: Any = object()  # get() without a default
_ABSENT: Any = object()  # what __contains__ asks get() to return for a missing key


@dataclass
class Config:
    """A fully resolved config: plain YAML data plus where each key came from.

    Attributes:
        data: The merged mapping with references resolved (dicts, lists, scalars only).
        sources: Key path -> ``file:line`` or ``--set key=value``.
        path: The file it was loaded from.
        overrides: The ``--set`` items applied, in order.
        unresolved: The merged mapping before references were resolved (``None`` for a config
            built from data directly); later overrides apply here and are resolved again.
    """

    data: dict[str, Any]
    sources: dict[KeyPath, str] = field(default_factory=dict)
    path: Path | None = None
    overrides: tuple[str, ...] = ()
    unresolved: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value at dotted ``key`` (``model.head.num_classes``, list items by index).

        Args:
            key: The dotted key path.
            default: Returned when there is no such key; without it a missing key is an error.

        Raises:
            ConfigError: No such key and no default (with a "did you mean").
        """
        try:
            return lookup(self.data, split_key(key))
        except (KeyError, IndexError, TypeError, ValueError):
            if default is not _MISSING:
                return default
            raise ConfigError(self._describe_missing(key)) from None

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def node(self, key: str = "") -> ConfigNode:
        """A view of the value at ``key`` that knows its path and origin (for :func:`build`)."""
        path = split_key(key) if key else ()
        return ConfigNode(self.get(key) if key else self.data, path, self)

    def origin(self, path: KeyPath | str) -> str:
        """Where the key at ``path`` (or its closest ancestor) was set: ``file:line`` or ``--set``."""
        if isinstance(path, str):
            path = split_key(path)
        for end in range(len(path), -1, -1):
            found = self.sources.get(path[:end])
            if found is not None:
                return found
        return str(self.path) if self.path else "<config>"

    def to_yaml(self) -> str:
        """The resolved config as YAML (key order kept; short scalar lists inline)."""
        return render_yaml(self.data)

    def _describe_missing(self, key: str) -> str:
        path = split_key(key)
        try:
            parent = lookup(self.data, path[:-1])
        except (KeyError, IndexError, TypeError, ValueError):
            parent = None
        message = f"config has no key '{key}'"
        if isinstance(parent, Mapping):
            siblings = [str(k) for k in parent]
            message += did_you_mean(path[-1], siblings, lambda close: dotted(path[:-1] + (close,)))
        return message + (f" ({self.path})" if self.path else "")


@dataclass(frozen=True)
class ConfigNode:
    """A value inside a :class:`Config` with its key path, so errors can name both.

    Attributes:
        value: The value at ``path``.
        path: Its key path from the config's root.
        config: The config it belongs to (``None`` for a plain mapping: origins read ``<dict>``).
    """

    value: Any
    path: KeyPath = ()
    config: Config | None = None

    def child(self, key: str | int) -> ConfigNode:
        """The node of ``value[key]`` (a mapping key or a list index)."""
        return ConfigNode(self.value[key], self.path + (str(key),), self.config)

    def with_value(self, value: Any) -> ConfigNode:
        """The same key path holding another value (e.g. the component built from this one)."""
        return ConfigNode(value, self.path, self.config)

    def origin(self, path: KeyPath | None = None) -> str:
        """Where ``path`` (default: this node's) was set."""
        path = self.path if path is None else path
        return self.config.origin(path) if self.config is not None else "<dict>"

    def where(self, key: str | None = None) -> str:
        """``model.head.foo (from file.yaml:12)`` for error messages.

        Args:
            key: A key below this node to name instead of the node itself.
        """
        path = self.path + ((key,) if key is not None else ())
        return f"{dotted(path)} (from {self.origin(path)})"
