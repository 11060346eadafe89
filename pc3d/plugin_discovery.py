"""What pc3d finds out about installed plugins, before any is loaded: the entry-point groups, the
selection switches read from the environment, the entry points by distribution, and the record
kept per plugin (:class:`PluginInfo`). Loading and registering them is
:mod:`pc3d.plugin_manager`'s job.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pc3d.registry import PluginError, normalize_plugin_name

__all__ = [
    "ALLOW_ENV",
    "AUTOLOAD_ENV",
    "COMMANDS_GROUP",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginWarning",
    "commands_by_distribution",
    "distribution_name",
    "distribution_version",
    "entry_points",
    "env_flag",
    "env_list",
]

ENTRY_POINT_GROUP = "pc3d"
#: Entry points of this group add ``pc3d`` subcommands (read by :mod:`pc3d.cli`); the plugin
#: listing shows a distribution's command names next to its registrations.
COMMANDS_GROUP = "pc3d.commands"
AUTOLOAD_ENV = "PC3D_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_ENV = "PC3D_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class PluginWarning(UserWarning):
    """A plugin failed and was skipped (the rest of pc3d keeps working)."""


@dataclass
class PluginInfo:
    """What pc3d knows about one plugin, for ``pc3d plugins`` and error reports.

    Attributes:
        name: The entry-point name (the module name for core plugins).
        distribution: The installed distribution, if any.
        version: Its version, if known.
        source: The entry point's target (``module:object``) or a description.
        status: ``loaded``, ``failed``, ``blocked`` or ``disabled``.
        error: Why it is not loaded (``stage: ErrorType: message`` for failures).
        error_traceback: The traceback of a failure.
        registered: Names it registered, by kind, in registration order.
        config_dirs: Existing folders its ``pc3d_config_dirs`` returned.
        commands: ``pc3d`` subcommands its distribution declares (group ``pc3d.commands``).
        warnings: Problems that did not stop it loading.
    """

    name: str
    distribution: str | None
    version: str | None
    source: str
    status: str = "loaded"
    error: str | None = None
    error_traceback: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    config_dirs: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The distribution name, or the plugin name where there is none."""
        return self.distribution or self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (``pc3d plugins --json``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "error_traceback"}
        data["config_dirs"] = [str(p) for p in self.config_dirs]
        return data


def env_flag(var: str) -> bool | None:
    """A yes/no switch from the environment.

    Args:
        var: The environment variable.

    Returns:
        True for 1/true/yes/on, False for 0/false/no/off or empty, None when unset.

    Raises:
        PluginError: Any other value (naming the variable).
    """
    value = os.environ.get(var)
    if value is None:
        return None
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise PluginError(f"{var}={value!r}: expected 1 or 0")


def env_list(var: str) -> list[str] | None:
    """A list of names from the environment, separated by commas or spaces.

    Args:
        var: The environment variable.

    Returns:
        The names, or None when the variable is unset or blank.
    """
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    return [part for part in re.split(r"[,\s]+", value) if part]


def distribution_name(ep: importlib.metadata.EntryPoint) -> str | None:
    """The name of the distribution declaring `ep` (None when unknown)."""
    return ep.dist.metadata["Name"] if ep.dist is not None else None


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The group's entry points, by distribution name, then entry-point name."""
    eps = importlib.metadata.entry_points(group=group)
    return sorted(eps, key=lambda ep: (normalize_plugin_name(distribution_name(ep) or ""), ep.name))


def commands_by_distribution() -> dict[str, list[str]]:
    """Command names of group ``pc3d.commands`` by normalized distribution name (no import)."""
    commands: dict[str, list[str]] = {}
    for ep in entry_points(COMMANDS_GROUP):
        commands.setdefault(normalize_plugin_name(distribution_name(ep) or ""), []).append(ep.name)
    return {dist: sorted(names) for dist, names in commands.items()}


def distribution_version(distribution: str) -> str | None:
    """The installed version of `distribution` (None when it is not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
