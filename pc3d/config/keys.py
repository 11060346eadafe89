"""Key paths inside a config (``model.head.num_classes``), the reserved keys, and ConfigError."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pc3d.errors import Pc3dError

__all__ = [
    "BASE_KEY",
    "KIND_KEY",
    "PLUGINS_KEY",
    "REPLACE_KEY",
    "TYPE_KEY",
    "ConfigError",
    "KeyPath",
    "dotted",
    "drop_under",
    "lookup",
    "split_key",
    "sub_paths",
]

#: Top-level key naming the files a config inherits from.
BASE_KEY = "_base_"
#: ``_replace_: true`` in a mapping replaces the inherited mapping instead of merging into it.
REPLACE_KEY = "_replace_"
#: A mapping with ``type: Name`` is a component.
TYPE_KEY = "type"
#: ``kind: head`` next to ``type:`` says which kind of component ``type`` names.
KIND_KEY = "kind"
#: Top-level key of a written (resolved) config: component type name -> the distribution of the
#: plugin that provided it, so a config whose plugin is missing says which one to install.
PLUGINS_KEY = "_plugins_"

#: A dotted key path split into its parts; list indices are decimal strings.
KeyPath = tuple[str, ...]


class ConfigError(Pc3dError, ValueError):
    """A config file, override or component mapping is wrong.

    The message names the key's dotted path and the file and line (or ``--set`` item) it came
    from.
    """


def dotted(path: KeyPath) -> str:
    """``("model", "head")`` -> ``"model.head"``; the empty path is ``"<root>"``."""
    return ".".join(path) if path else "<root>"


def split_key(key: str) -> KeyPath:
    """``"model.head.num_classes"`` -> ``("model", "head", "num_classes")``.

    Raises:
        ConfigError: A part is empty (``a..b``, a leading or trailing dot).
    """
    parts = tuple(key.split("."))
    if any(not part for part in parts):
        raise ConfigError(f"invalid key {key!r}: empty part between dots")
    return parts


def lookup(data: Any, path: KeyPath) -> Any:
    """The value at ``path`` in nested mappings and lists (list items by integer index).

    Raises:
        KeyError: A mapping has no such key.
        IndexError: A list index is out of range.
        TypeError: The path goes below a scalar.
        ValueError: A list is indexed by something that is not an integer.
    """
    for key in path:
        if isinstance(data, list):
            data = data[int(key)]
        elif isinstance(data, Mapping):
            data = data[key]
        else:
            raise TypeError(key)
    return data


def sub_paths(value: Any, prefix: KeyPath) -> list[KeyPath]:
    """Every key path below ``prefix`` inside ``value`` (mappings and lists), depth first."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    paths: list[KeyPath] = []
    for key, item in items:
        path = prefix + (str(key),)
        paths.append(path)
        paths.extend(sub_paths(item, path))
    return paths


def drop_under(sources: dict[KeyPath, str], path: KeyPath) -> None:
    """Forget the origins of ``path`` and everything below it (its value is being replaced)."""
    for key in [p for p in sources if p[: len(path)] == path]:
        del sources[key]
