"""Writing a resolved config: YAML text, and the copy every run keeps in its work directory."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pc3d.config.keys import PLUGINS_KEY, TYPE_KEY
from pc3d.config.references import escape_references
from pc3d.errors import Pc3dError
from pc3d.io.atomic import atomic_write_text
from pc3d.registry import normalize_plugin_name

if TYPE_CHECKING:
    from pc3d.config.node import Config
    from pc3d.registry import Registry

__all__ = ["component_plugins", "dump_config", "recorded_distribution", "render_yaml"]

#: A valid distribution name (PEP 508); anything else in ``_plugins_`` is not repeated to users.
_DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def render_yaml(data: Any) -> str:
    """Resolved config data as YAML that loads back to the same data.

    Key order is kept, short lists of scalars are written inline (``[0.2, 0.2]``), and a literal
    ``${`` is written ``$${`` so that it is not read as a reference.
    """
    return yaml.dump(escape_references(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def dump_config(
    config: Config,
    work_dir: str | os.PathLike[str],
    name: str = "config.yaml",
    *,
    registry: Registry | None = None,
) -> Path:
    """Write the resolved config into ``work_dir`` (created if needed), atomically.

    The file is self-contained (no ``_base_``, no references, overrides applied), starts with a
    comment naming the source file and the overrides, and loads back to the same data. When
    components come from plugins it ends with a ``_plugins_`` mapping: each such component type
    with the distribution that provided it (see `component_plugins`), so that building from the
    file where that plugin is missing names the plugin to install. It is replaced atomically
    (:mod:`pc3d.io.atomic`); a new file gets the permissions of a normal new file under the
    process umask, so others can read it.

    Args:
        config: The config to write.
        work_dir: The folder to write into.
        name: The file name.
        registry: Where to look the component types up; default: the loaded plugins'.

    Returns:
        The written file.
    """
    header = ["# Resolved pc3d config (bases merged, overrides applied, references resolved)."]
    if config.path is not None:
        header.append(f"# from: {config.path}")
    header.extend(f"# --set {item}" for item in config.overrides)
    data = {k: v for k, v in config.data.items() if k != PLUGINS_KEY}
    plugins = component_plugins(config.data, registry)
    if plugins:
        header.append(f"# {PLUGINS_KEY}: the plugin (pip distribution) each component type comes from.")
        data[PLUGINS_KEY] = plugins
    text = "\n".join(header) + "\n" + render_yaml(data)
    return atomic_write_text(Path(work_dir) / name, text)


def component_plugins(data: Mapping[str, Any], registry: Registry | None = None) -> dict[str, str]:
    """Which plugin distribution provides each component type ``data`` names (``type: Name``).

    Types pc3d itself provides are left out, and so are types no installed distribution
    provides (a plugin registered from code). A type the registry does not know keeps the
    distribution ``data``'s own ``_plugins_`` gives it, if any, so rewriting a config loaded
    from a written one does not lose what it recorded.

    Args:
        data: Config data (a resolved config's ``config.data``).
        registry: Where to look the types up; default: the loaded plugins'.

    Returns:
        Type name -> distribution name, in the order the types first appear.
    """
    names = list(dict.fromkeys(_type_names({k: v for k, v in data.items() if k != PLUGINS_KEY})))
    if not names:
        return {}
    if registry is None:
        try:
            from pc3d.plugin_manager import get_plugin_manager  # late: it imports the plugins

            registry = get_plugin_manager().registry
        except Pc3dError:
            registry = None
    found: dict[str, str] = {}
    for type_name in names:
        owners = {r.distribution for r in registry.find(type_name)} if registry is not None else set()
        if owners:
            dist = owners.pop() if len(owners) == 1 else None
            if dist is not None and normalize_plugin_name(dist) != "pc3d":
                found[type_name] = dist
        else:
            dist = recorded_distribution(data, type_name)
            if dist is not None:
                found[type_name] = dist
    return found


def recorded_distribution(data: Mapping[str, Any], type_name: str) -> str | None:
    """The distribution config ``data``'s top-level ``_plugins_`` names for ``type_name``.

    Anything unusable there (not a mapping, not a distribution name) is ignored: the record only
    improves error messages, it never causes one.
    """
    recorded = data.get(PLUGINS_KEY)
    dist = recorded.get(type_name) if isinstance(recorded, Mapping) else None
    return dist if isinstance(dist, str) and _DISTRIBUTION_NAME.fullmatch(dist) else None


def _type_names(value: Any) -> Iterator[str]:
    """The ``type:`` names of every component mapping in ``value``, depth first."""
    if isinstance(value, Mapping):
        type_name = value.get(TYPE_KEY)
        if isinstance(type_name, str):
            yield type_name
        for child in value.values():
            yield from _type_names(child)
    elif isinstance(value, list):
        for child in value:
            yield from _type_names(child)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes short lists of scalars inline (``[0.2, 0.2]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = len(data) <= 12 and all(isinstance(v, (int, float, str, bool)) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_Dumper.add_representer(list, _represent_list)
