"""Deep merging of config mappings, keeping track of where each value came from.

Mappings merge key by key, recursively; lists, scalars and ``null`` replace the base value; a
mapping holding ``_replace_: true`` replaces the base mapping at that place as a whole. A mapping
merged onto a reference to a mapping (``test: {batch_size: 16}`` onto ``test: ${data.val}``)
merges into a copy of what the reference names.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pc3d.config.keys import REPLACE_KEY, KeyPath, drop_under, sub_paths
from pc3d.config.references import follow_reference

__all__ = ["expand_reference", "merge", "merge_tracked", "without_replace"]


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base``.

    Args:
        base: The inherited mapping (left untouched).
        override: The mapping on top (left untouched).

    Returns:
        A new mapping: the base's keys in their order, then the new ones. Mappings merge
        recursively; lists, scalars and ``None`` replace; a mapping holding ``_replace_: true``
        replaces the base mapping instead of merging into it.
    """
    return merge_tracked(dict(base), dict(override), (), {}, {})


def merge_tracked(
    base: dict[str, Any],
    override: dict[str, Any],
    prefix: KeyPath,
    sources: dict[KeyPath, str],
    override_sources: Mapping[KeyPath, str],
    root: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``override`` onto ``base`` like :func:`merge`, and keep the origins.

    Args:
        base: The inherited mapping at ``prefix``.
        override: The mapping merged on top of it.
        prefix: The key path of both mappings in the config.
        sources: The origins of ``base``'s keys; updated in place so that each key keeps the
            origin of the value that won.
        override_sources: The origins of ``override``'s keys.
        root: The whole inherited config that references are looked up in (default: ``base``,
            which is the whole config at the top level).

    Returns:
        The merged mapping (new; ``base`` and ``override`` are not changed).
    """
    root = base if root is None else root
    result = dict(base)
    for key, value in override.items():
        if key == REPLACE_KEY:
            continue
        path = prefix + (str(key),)
        merges = isinstance(value, dict) and not value.get(REPLACE_KEY)
        if merges and isinstance(result.get(key), str):
            expand_reference(result, key, path, root, sources, (dict,))
        if merges and isinstance(result.get(key), dict):
            result[key] = merge_tracked(result[key], value, path, sources, override_sources, root)
        else:
            drop_under(sources, path)
            result[key] = without_replace(value)
            sources.update((p, s) for p, s in override_sources.items() if p[: len(path)] == path)
        if path in override_sources:
            sources[path] = override_sources[path]
    return result


def without_replace(value: Any) -> Any:
    """A deep copy of ``value`` without ``_replace_`` keys.

    Copying also unshares YAML aliases (``*anchor``), so that an override changes one place only.
    """
    if isinstance(value, dict):
        return {k: without_replace(v) for k, v in value.items() if k != REPLACE_KEY}
    if isinstance(value, list):
        return [without_replace(v) for v in value]
    return value


def expand_reference(
    container: Any,
    slot: Any,
    path: KeyPath,
    root: Mapping[str, Any],
    sources: dict[KeyPath, str],
    kinds: tuple[type, ...] = (dict, list),
) -> None:
    """Replace ``container[slot]`` (at ``path``), a whole-value reference to a value of one of
    ``kinds``, by a copy of that value, its references kept and its keys keeping their origins in
    ``sources``; anything else stays as it is (for the caller to merge over or refuse).

    What a child config's mapping merges into, and what a ``--set`` below a reference sets in.
    """
    found = follow_reference(root, container[slot])
    if found is None or not isinstance(found[0], kinds):
        return
    value, target = found
    container[slot] = copy.deepcopy(value)
    for sub in sub_paths(value, ()):
        origin = next(
            (sources[target + sub[:end]] for end in range(len(sub), -1, -1) if target + sub[:end] in sources),
            None,
        )
        if origin is not None:
            sources[path + sub] = origin
