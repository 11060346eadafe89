"""References between config values: ``${class_names}``, ``${model.backbone.channels.-1}``.

A reference names another key by its dotted path (list items by index, negative from the end).
References are resolved after ``_base_`` merging and ``--set`` overrides, so they follow the
final values:

- a string that is exactly one reference is replaced by the referenced value itself, of its own
  type (a list stays a list, a mapping a mapping; each use gets its own copy);
- references inside a longer string are interpolated as text (scalars only);
- ``$${...}`` is a literal ``${...}``.

A missing or circular reference is a :class:`ConfigError` naming the referencing key, its file
and line, and the reference.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from pc3d.config.keys import ConfigError, KeyPath, dotted
from pc3d.errors import did_you_mean

__all__ = ["REFERENCE", "escape_references", "follow_reference", "has_references", "resolve_references"]

#: ``${path}``; group 1 is ``$`` for the escaped form ``$${path}``, group 3 is empty when the
#: closing brace is missing.
REFERENCE = re.compile(r"\$(\$?)\{([^{}]*)(\}?)")


def has_references(text: str) -> bool:
    """Whether ``text`` holds a reference (or an escaped ``$${...}``) that resolving changes."""
    return REFERENCE.search(text) is not None


def resolve_references(data: dict[str, Any], origin: Callable[[KeyPath], str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``${...}`` resolved.

    Args:
        data: The merged config mapping, references unresolved (left untouched).
        origin: Key path -> ``file:line`` (or ``--set ...``), for error messages.

    Returns:
        The resolved mapping.

    Raises:
        ConfigError: A reference names a missing key, is part of a cycle, is malformed, or puts a
            list or mapping inside a text.
    """
    resolved = _Resolver(data, origin).enter((), data)
    assert isinstance(resolved, dict)
    return resolved


def follow_reference(
    data: Mapping[str, Any], text: str, seen: frozenset[str] = frozenset()
) -> tuple[Any, KeyPath] | None:
    """The unresolved value the whole-value reference ``text`` names in ``data``, and its key path.

    References on the way are followed; the value is returned as written (references inside it
    unresolved), so that a copy of it follows later changes of what those name. Used where a key
    is set below a reference (``--set data.test.batch_size=16``, or a child config's
    ``data: {test: {batch_size: 16}}``, with ``data.test: ${data.val}``).

    Returns:
        ``(value, path)``, or ``None`` where ``text`` is not a whole-value reference or does not
        lead to a value (resolving it later says why).
    """
    whole = REFERENCE.fullmatch(text)
    if whole is None or whole.group(1) or not whole.group(3) or text in seen:
        return None
    node: Any = data
    canonical: KeyPath = ()
    for key in (part.strip() for part in whole.group(2).split(".")):
        if isinstance(node, str):
            found = follow_reference(data, node, seen | {text})
            if found is None:
                return None
            node, canonical = found
        if isinstance(node, Mapping) and key in node:
            node, canonical = node[key], canonical + (key,)
        elif isinstance(node, list) and re.fullmatch(r"-?\d+", key) and -len(node) <= int(key) < len(node):
            index = int(key) % len(node)
            node, canonical = node[index], canonical + (str(index),)
        else:
            return None
    if isinstance(node, str) and REFERENCE.fullmatch(node):
        return follow_reference(data, node, seen | {text})
    return node, canonical


def escape_references(value: Any) -> Any:
    """A copy of resolved data in which every literal ``${`` is written ``$${``, so that loading
    the written YAML gives the same strings back."""
    if isinstance(value, dict):
        return {k: escape_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_references(v) for v in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


class _Resolver:
    """Resolves values by key path, memoised, following references depth first.

    ``active`` holds the paths being resolved; meeting one of them again is a cycle.
    """

    def __init__(self, data: dict[str, Any], origin: Callable[[KeyPath], str]) -> None:
        self.data = data
        self.origin = origin
        self.done: dict[KeyPath, Any] = {}
        self.active: list[KeyPath] = []

    def where(self, path: KeyPath) -> str:
        return f"{dotted(path)} (from {self.origin(path)})"

    def enter(self, path: KeyPath, raw: Any) -> Any:
        """The resolved form of ``raw``, the unresolved value at ``path``."""
        if path in self.done:
            return self.done[path]
        if path in self.active:
            chain = [*self.active[self.active.index(path) :], path]
            raise ConfigError(
                f"{self.where(self.active[-1])}: circular reference: " + " -> ".join(dotted(p) for p in chain)
            )
        self.active.append(path)
        try:
            if isinstance(raw, dict):
                result: Any = {k: self.enter(path + (str(k),), v) for k, v in raw.items()}
            elif isinstance(raw, list):
                result = [self.enter(path + (str(i),), v) for i, v in enumerate(raw)]
            elif isinstance(raw, str):
                result = self.resolve_text(raw, path)
            else:
                result = raw
        finally:
            self.active.pop()
        self.done[path] = result
        return result

    def resolve_text(self, text: str, path: KeyPath) -> Any:
        whole = REFERENCE.fullmatch(text)
        if whole is not None and not whole.group(1) and whole.group(3):
            return copy.deepcopy(self.value_at(self.target(whole.group(2), path), path))
        return REFERENCE.sub(lambda match: self.interpolate(match, path), text)

    def interpolate(self, match: re.Match[str], path: KeyPath) -> str:
        escaped, body, closed = match.groups()
        if escaped:
            return "${" + body + closed
        if not closed:
            raise ConfigError(f"{self.where(path)}: reference '${{{body}' has no closing '}}'")
        value = self.value_at(self.target(body, path), path)
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "null"
        if isinstance(value, (str, int, float)):
            return str(value)
        kind = "a list" if isinstance(value, list) else "a mapping"
        raise ConfigError(
            f"{self.where(path)}: ${{{body}}} is {kind}, which cannot be part of a text; "
            "make the reference the whole value to use it as it is"
        )

    def target(self, body: str, path: KeyPath) -> KeyPath:
        parts = tuple(part.strip() for part in body.split("."))
        if not all(parts):
            raise ConfigError(
                f"{self.where(path)}: invalid reference '${{{body}}}': write a dotted key path "
                "such as ${model.backbone.channels.0}"
            )
        return parts

    def value_at(self, target: KeyPath, referrer: KeyPath) -> Any:
        """The resolved value at ``target``, needed by the reference at ``referrer``."""
        node: Any = self.data
        canonical: KeyPath = ()
        for depth, key in enumerate(target):
            if isinstance(node, str) and REFERENCE.fullmatch(node):
                # The path goes through another reference: continue in its resolved value.
                node = self.value_at(canonical, referrer)
                for rest in target[depth:]:
                    node, key = self.step(node, rest, canonical, target, referrer)
                    canonical += (key,)
                return node
            node, key = self.step(node, key, canonical, target, referrer)
            canonical += (key,)
        return self.enter(canonical, node)

    def step(
        self, node: Any, key: str, parent: KeyPath, target: KeyPath, referrer: KeyPath
    ) -> tuple[Any, str]:
        """``node[key]`` and the key as a path part (a list index made non-negative)."""
        if isinstance(node, Mapping):
            for candidate in node:
                if str(candidate) == key:
                    return node[candidate], key
            hint = did_you_mean(key, [str(k) for k in node], lambda close: dotted(parent + (close,)))
            reason = f"config has no key '{dotted(parent + (key,))}'{hint}"
        elif isinstance(node, list):
            index = int(key) if re.fullmatch(r"-?\d+", key) else None
            if index is not None and -len(node) <= index < len(node):
                return node[index], str(index % len(node))
            reason = f"{dotted(parent)} is a list of {len(node)}, '{key}' is not an index in it"
        else:
            reason = f"{dotted(parent)} is {type(node).__name__} {node!r}, not a mapping or a list"
        raise ConfigError(f"{self.where(referrer)}: reference ${{{dotted(target)}}} not found: {reason}")
