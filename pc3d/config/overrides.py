"""Command-line overrides: ``--set model.head.num_classes=3`` (the value is parsed as YAML)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from pc3d.config.keys import BASE_KEY, ConfigError, KeyPath, dotted, drop_under, split_key, sub_paths
from pc3d.config.merging import expand_reference, without_replace
from pc3d.config.node import Config
from pc3d.config.references import REFERENCE, resolve_references
from pc3d.config.type_checks import describe_value
from pc3d.config.yaml_text import load_yaml_value, yaml_problem

__all__ = ["apply_overrides", "parse_override"]


def parse_override(item: str) -> tuple[KeyPath, Any]:
    """``"model.head.num_classes=3"`` -> ``(("model", "head", "num_classes"), 3)``.

    Raises:
        ConfigError: No ``=``, an empty key, ``_base_``, or a value that is not valid YAML.
    """
    origin = f"--set {item}"
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{origin}: expected KEY=VALUE, e.g. model.head.num_classes=3")
    path = split_key(key)
    if path[0] == BASE_KEY:
        raise ConfigError(f"{origin}: {BASE_KEY} cannot be overridden; load another file")
    try:
        value = load_yaml_value(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"{origin}: the value is not valid YAML: {yaml_problem(err)}") from err
    return path, without_replace(value)


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply ``dotted.key=value`` items (value parsed as YAML) to ``config``, then resolve
    references.

    Intermediate mappings are created as needed; a list item is addressed by its index. A value
    replaces the one in the config, mappings included (``--set`` says exactly what it sets).
    Overrides apply before references are resolved, so ``${...}`` follows the overridden value.
    A key below a reference to a mapping or list (``--set data.test.batch_size=16`` with
    ``data.test: ${data.val}``) turns the reference into a copy of what it names (references
    inside kept), with that key set: the other keys stay as they were.

    Args:
        config: Changed in place: its data, sources and list of overrides.
        overrides: ``KEY=VALUE`` items, applied in order.

    Returns:
        ``config``.

    Raises:
        ConfigError: A malformed item, a path that goes below a scalar, a bad list index, or a
            reference that cannot be resolved.
    """
    unresolved = config.unresolved if config.unresolved is not None else without_replace(config.data)
    applied = list(config.overrides)
    for item in overrides:
        path, value = parse_override(item)
        _set(config, unresolved, path, value, f"--set {item}")
        applied.append(item)
    config.unresolved = unresolved
    config.data = resolve_references(unresolved, config.origin)
    config.overrides = tuple(applied)
    return config


def _set(config: Config, data: dict[str, Any], path: KeyPath, value: Any, origin: str) -> None:
    container: Any = data
    for depth, key in enumerate(path[:-1]):
        if isinstance(container, dict):
            if container.get(key) is None:
                container[key] = {}
                config.sources[path[: depth + 1]] = origin  # created by this item
            slot: Any = key
        elif isinstance(container, list):
            slot = _index(container, key, path[: depth + 1], origin)
        else:
            raise _not_a_container(config, path, path[:depth], container, origin)
        if isinstance(container[slot], str):
            expand_reference(container, slot, path[: depth + 1], data, config.sources)
        container = container[slot]
    last = path[-1]
    if isinstance(container, dict):
        container[last] = value
    elif isinstance(container, list):
        container[_index(container, last, path, origin)] = value
    else:
        raise _not_a_container(config, path, path[:-1], container, origin)
    drop_under(config.sources, path)
    config.sources[path] = origin
    for sub in sub_paths(value, path):
        config.sources[sub] = origin


def _not_a_container(config: Config, path: KeyPath, at: KeyPath, value: Any, origin: str) -> ConfigError:
    what = describe_value(value)
    if isinstance(value, str) and REFERENCE.fullmatch(value):
        what = f"the reference {value} (set the key it refers to, or {dotted(at)} as a whole)"
    return ConfigError(
        f"{origin}: cannot set {dotted(path)}: {dotted(at)} is {what} "
        f"(from {config.origin(at)}), not a mapping or list"
    )


def _index(container: list[Any], key: str, path: KeyPath, origin: str) -> int:
    try:
        index = int(key)
    except ValueError:
        raise ConfigError(
            f"{origin}: {dotted(path)}: '{key}' indexes a list, so it must be an integer"
        ) from None
    if not -len(container) <= index < len(container):
        raise ConfigError(f"{origin}: {dotted(path)}: index {index} out of range (list of {len(container)})")
    return index
