"""Names -> components: what the loaded plugins registered, by kind and name.

A config names a component with ``type:`` and :func:`pc3d.config.build` looks it up here::

    registry = pc3d.plugin_manager.get_registry()
    registry.get("head", "CenterHead")        # the class (or factory) registered under that name

Plugins fill the registry through :class:`pc3d.plugin_api.Registrar`; users of pc3d only read
it. A name is unique per kind: when two plugins register the same kind and name, both are
remembered as a :class:`Conflict` and every lookup of that name (and ``get_registry()``) raises
:class:`PluginConflictError` naming both plugins, so the result never depends on install order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pc3d.errors import Pc3dError, did_you_mean

__all__ = [
    "BLOCK_ENV",
    "KINDS",
    "Conflict",
    "PluginConflictError",
    "PluginError",
    "Registration",
    "Registry",
    "UnknownComponentError",
    "check_kind",
    "describe_unknown_kind",
    "normalize_plugin_name",
]

#: The kinds of component a plugin can register; a config names one with ``type:``.
KINDS: tuple[str, ...] = (
    "model",
    "backbone",
    "neck",
    "head",
    "voxel_encoder",
    "middle_encoder",
    "dataset",
    "transform",
    "metric",
    "train_hook",
)

#: The environment variable that blocks plugins (read by :mod:`pc3d.plugin_manager`); conflict
#: messages name it as the way out.
BLOCK_ENV = "PC3D_BLOCK_PLUGINS"


class PluginError(Pc3dError):
    """A plugin is misconfigured, broken, or the plugin selection is invalid."""


class PluginConflictError(PluginError):
    """Two plugins registered the same name for the same kind of component."""


class UnknownComponentError(PluginError, LookupError):
    """No plugin registered a component of that kind under that name."""


@dataclass(frozen=True)
class Registration:
    """One registered component: ``obj(**kwargs)`` builds it.

    Attributes:
        kind: One of :data:`KINDS`.
        name: The name configs use in ``type:``.
        obj: The class or factory function.
        plugin: The plugin (entry-point name) that registered it.
        distribution: The installed distribution of that plugin, if any.
    """

    kind: str
    name: str
    obj: Callable[..., Any]
    plugin: str
    distribution: str | None

    @property
    def owner(self) -> str:
        """The distribution that registered it (the plugin name where there is none)."""
        return self.distribution or self.plugin


@dataclass(frozen=True)
class Conflict:
    """The same ``(kind, name)`` registered by two plugins.

    Attributes:
        kind: The kind both registered.
        name: The name both registered.
        first: The registration that came first (in plugin load order).
        second: The clashing one.
    """

    kind: str
    name: str
    first: Registration
    second: Registration

    def message(self) -> str:
        """What went wrong, naming both plugins, and how to resolve it."""
        return (
            f"{self.kind} '{self.name}' is registered by two plugins: {self.first.owner} "
            f"(plugin '{self.first.plugin}') and {self.second.owner} (plugin "
            f"'{self.second.plugin}'); uninstall one or block it with "
            f"{BLOCK_ENV}={normalize_plugin_name(self.second.plugin)}"
        )


class Registry:
    """Components registered by plugins, by kind and name. Read-only for users of pc3d.

    Attributes:
        conflicts: Every ``(kind, name)`` registered by two plugins, in load order.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self.conflicts: list[Conflict] = []

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The class or factory registered as ``kind`` ``name``.

        Args:
            kind: One of :data:`KINDS`.
            name: The registered name (a config's ``type:``).

        Returns:
            The registered class or factory function.

        Raises:
            UnknownComponentError: Nothing of that kind has that name (the message suggests close
                names and says if the name is registered under another kind).
            PluginConflictError: Two plugins registered that name.
            PluginError: ``kind`` is not a kind of component.
        """
        return self.entry(kind, name).obj

    def entry(self, kind: str, name: str) -> Registration:
        """Like :meth:`get`, with who registered it.

        Args:
            kind: One of :data:`KINDS`.
            name: The registered name.

        Returns:
            The registration.

        Raises:
            UnknownComponentError: Nothing of that kind has that name.
            PluginConflictError: Two plugins registered that name.
            PluginError: ``kind`` is not a kind of component.
        """
        check_kind(kind)
        found = self._entries[kind].get(name)
        if found is None:
            raise UnknownComponentError(self.describe_unknown(kind, name))
        for conflict in self.conflicts:
            if (conflict.kind, conflict.name) == (kind, name):
                raise PluginConflictError(conflict.message())
        return found

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``.

        Raises:
            PluginError: ``kind`` is not a kind of component.
        """
        check_kind(kind)
        return sorted(self._entries[kind])

    def find(self, name: str) -> list[Registration]:
        """Every registration named ``name``, whatever its kind."""
        return [entries[name] for entries in self._entries.values() if name in entries]

    def entries(self) -> list[Registration]:
        """All registrations, by kind then name."""
        return [entries[name] for entries in self._entries.values() for name in sorted(entries)]

    def __contains__(self, kind_and_name: object) -> bool:
        if not (isinstance(kind_and_name, tuple) and len(kind_and_name) == 2):
            return False
        kind, name = kind_and_name
        return kind in self._entries and name in self._entries[kind]

    def check(self) -> None:
        """Refuse a registry with conflicts.

        Raises:
            PluginConflictError: Naming every conflict, if there is any.
        """
        if self.conflicts:
            raise PluginConflictError("; ".join(c.message() for c in self.conflicts))

    def describe_unknown(self, kind: str, name: str) -> str:
        """An error message for an unknown ``kind`` ``name``, with "did you mean" suggestions."""
        message = f"unknown {kind} '{name}'"
        elsewhere = [r.kind for r in self.find(name)]
        if elsewhere:
            message += f" ('{name}' is registered as a {' and a '.join(elsewhere)}, not a {kind})"
        names = self.names(kind)
        message += did_you_mean(name, names)
        if names:
            message += f". Registered {kind}s: {', '.join(names)}."
        else:
            message += (
                f". No installed plugin registers a {kind}; is the plugin providing it installed "
                "and enabled? (see `pc3d plugins`)"
            )
        return message

    def commit(self, registrations: Iterable[Registration]) -> None:
        """Add one plugin's registrations (called by the plugin manager once its hook returned).

        A name already taken for that kind is kept as the first registration and recorded in
        :attr:`conflicts`.

        Args:
            registrations: What one plugin registered.
        """
        for reg in registrations:
            existing = self._entries[reg.kind].get(reg.name)
            if existing is None:
                self._entries[reg.kind][reg.name] = reg
            else:
                # Keep the first and remember the clash: choosing one silently would make the
                # result depend on install order.
                self.conflicts.append(Conflict(reg.kind, reg.name, existing, reg))


def describe_unknown_kind(kind: object) -> str:
    """The message for a ``kind`` that is not one of :data:`KINDS`: the closest kind and the list."""
    return f"unknown component kind {kind!r}{did_you_mean(str(kind), KINDS)}; kinds: {', '.join(KINDS)}"


def check_kind(kind: str) -> None:
    """Check that ``kind`` is one of :data:`KINDS`.

    Raises:
        PluginError: It is not (the message suggests the closest kind).
    """
    if kind not in KINDS:
        raise PluginError(describe_unknown_kind(kind))


def normalize_plugin_name(name: str) -> str:
    """A plugin or distribution name for comparison: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()
