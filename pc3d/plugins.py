"""Plugin manager (entry-point group ``pc3d``) and the registry of components plugins provide.

Discovery: every installed distribution with an entry point in the group ``pc3d`` is a plugin.
Each is loaded and registered on its own, so a plugin that raises on import or in a hook is
reported (name, distribution, error) and skipped while everything else keeps working.

Selection, from the environment or the Python API (:func:`load_plugins`):

- ``PC3D_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point except those named in the allow list;
- ``PC3D_PLUGINS=a,b``: allow list, load only these;
- ``PC3D_BLOCK_PLUGINS=c``: block list, never load these (wins over the allow list).

A plugin is named by its entry-point name (``det3d``) or its distribution (``pc3d-det3d``);
case, ``-`` and ``_`` do not matter.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import os
import re
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from pc3d import hookspecs
from pc3d.errors import Pc3dError
from pc3d.hookspecs import hookimpl

__all__ = [
    "ALLOW_ENV",
    "AUTOLOAD_ENV",
    "BLOCK_ENV",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Conflict",
    "PluginConflictError",
    "PluginError",
    "PluginInfo",
    "PluginManager",
    "PluginWarning",
    "Registrar",
    "Registration",
    "Registry",
    "UnknownComponentError",
    "add_plugin_cli_commands",
    "config_dirs",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "load_plugins",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "pc3d"
AUTOLOAD_ENV = "PC3D_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_ENV = "PC3D_PLUGINS"
BLOCK_ENV = "PC3D_BLOCK_PLUGINS"

#: The kinds of component a plugin can register; a config names one with ``type:``.
KINDS: tuple[str, ...] = (
    "model",
    "backbone",
    "neck",
    "head",
    "voxel_encoder",
    "dataset",
    "transform",
    "metric",
    "train_hook",
)

#: Modules of pc3d itself that implement hooks. They go through the same hooks as outside
#: plugins (distribution ``pc3d``) but are always loaded: autoload and the lists select plugins,
#: not the core.
CORE_PLUGINS: tuple[str, ...] = ("pc3d.nn.plugin", "pc3d.evaluation.plugin")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class PluginError(Pc3dError):
    """A plugin is misconfigured, broken, or the plugin selection is invalid."""


class PluginConflictError(PluginError):
    """Two plugins registered the same name for the same kind of component."""


class UnknownComponentError(PluginError, LookupError):
    """No plugin registered a component of that kind under that name."""


class PluginWarning(UserWarning):
    """A plugin failed and was skipped (the rest of pc3d keeps working)."""


@dataclass(frozen=True)
class Registration:
    """One registered component: ``obj(**kwargs)`` builds it."""

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
    """The same ``(kind, name)`` registered by two plugins."""

    kind: str
    name: str
    first: Registration
    second: Registration

    def message(self) -> str:
        return (
            f"{self.kind} '{self.name}' is registered by two plugins: {self.first.owner} "
            f"(plugin '{self.first.plugin}') and {self.second.owner} (plugin "
            f"'{self.second.plugin}'); uninstall one or block it with "
            f"{BLOCK_ENV}={_normalize(self.second.plugin)}"
        )


class Registry:
    """Components registered by plugins, by kind and name. Read-only for users of pc3d."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self.conflicts: list[Conflict] = []

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The class or factory registered as ``kind`` ``name``.

        :raises UnknownComponentError: nothing of that kind has that name (the message suggests
            close names and says if the name is registered under another kind).
        :raises PluginConflictError: two plugins registered that name.
        """
        return self.entry(kind, name).obj

    def entry(self, kind: str, name: str) -> Registration:
        """Like :meth:`get`, with who registered it."""
        _check_kind(kind)
        found = self._entries[kind].get(name)
        if found is None:
            raise UnknownComponentError(self.describe_unknown(kind, name))
        for conflict in self.conflicts:
            if (conflict.kind, conflict.name) == (kind, name):
                raise PluginConflictError(conflict.message())
        return found

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        _check_kind(kind)
        return sorted(self._entries[kind])

    def find(self, name: str) -> list[Registration]:
        """Every registration named ``name``, whatever its kind."""
        return [entries[name] for entries in self._entries.values() if name in entries]

    def entries(self) -> list[Registration]:
        """All registrations, by kind then name."""
        return [
            entries[name] for kind, entries in self._entries.items() for name in sorted(entries)
        ]

    def __contains__(self, kind_and_name: object) -> bool:
        if not (isinstance(kind_and_name, tuple) and len(kind_and_name) == 2):
            return False
        kind, name = kind_and_name
        return kind in self._entries and name in self._entries[kind]

    def check(self) -> None:
        """Raise :class:`PluginConflictError` naming every conflict, if there is any."""
        if self.conflicts:
            raise PluginConflictError("; ".join(c.message() for c in self.conflicts))

    def describe_unknown(self, kind: str, name: str) -> str:
        """An error message for an unknown ``kind`` ``name``, with "did you mean" suggestions."""
        message = f"unknown {kind} '{name}'"
        elsewhere = [r.kind for r in self.find(name)]
        if elsewhere:
            message += f" ('{name}' is registered as a {' and a '.join(elsewhere)}, not a {kind})"
        suggestion = suggest(name, self.names(kind))
        if suggestion:
            message += f"; did you mean '{suggestion}'?"
        names = self.names(kind)
        if names:
            message += f"{'' if suggestion else '.'} Registered {kind}s: {', '.join(names)}."
        else:
            message += (
                f". No installed plugin registers a {kind}; is the plugin providing it installed "
                "and enabled? (see `pc3d plugins`)"
            )
        return message

    def _commit(self, registrations: Iterable[Registration]) -> None:
        for reg in registrations:
            existing = self._entries[reg.kind].get(reg.name)
            if existing is None:
                self._entries[reg.kind][reg.name] = reg
            else:
                # Keep the first and remember the clash: choosing one silently would make the
                # result depend on install order.
                self.conflicts.append(Conflict(reg.kind, reg.name, existing, reg))


class Registrar:
    """The registration object handed to a plugin's ``pc3d_register`` hook.

    Registrations are staged and committed only when the whole hook returns, so a plugin that
    fails half-way leaves nothing behind.
    """

    def __init__(self, plugin: str, distribution: str | None) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.pending: list[Registration] = []

    def add(self, kind: str, obj: Callable[..., Any], name: str | None = None) -> None:
        """Register ``obj`` (a class or factory function) as a ``kind`` named ``name``
        (default ``obj.__name__``)."""
        _check_kind(kind)
        if not callable(obj):
            raise PluginError(f"{kind} {name or obj!r}: expected a class or function, got {obj!r}")
        name = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(f"{kind} {obj!r}: invalid name {name!r} (letters, digits, _ . -)")
        if any(r.kind == kind and r.name == name for r in self.pending):
            raise PluginError(f"registers {kind} '{name}' twice")
        self.pending.append(Registration(kind, name, obj, self.plugin, self.distribution))

    def add_model(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A whole model (detector, classifier, segmentor)."""
        self.add("model", obj, name)

    def add_backbone(self, obj: Callable[..., Any], name: str | None = None) -> None:
        self.add("backbone", obj, name)

    def add_neck(self, obj: Callable[..., Any], name: str | None = None) -> None:
        self.add("neck", obj, name)

    def add_head(self, obj: Callable[..., Any], name: str | None = None) -> None:
        self.add("head", obj, name)

    def add_voxel_encoder(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """Points -> voxel/pillar features or a BEV map."""
        self.add("voxel_encoder", obj, name)

    def add_dataset(self, obj: Callable[..., Any], name: str | None = None) -> None:
        self.add("dataset", obj, name)

    def add_transform(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A data transform (augmentation pipeline step)."""
        self.add("transform", obj, name)

    def add_metric(self, obj: Callable[..., Any], name: str | None = None) -> None:
        self.add("metric", obj, name)

    def add_train_hook(self, obj: Callable[..., Any], name: str | None = None) -> None:
        """A training-loop hook (logging, checkpointing, schedules)."""
        self.add("train_hook", obj, name)


@dataclass
class PluginInfo:
    """What pc3d knows about one plugin, for ``pc3d plugins`` and error reports."""

    name: str
    distribution: str | None
    version: str | None
    source: str
    status: str = "loaded"  # loaded | failed | blocked | disabled
    error: str | None = None
    error_traceback: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    config_dirs: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.distribution or self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "registered": self.registered,
            "config_dirs": [str(p) for p in self.config_dirs],
            "commands": self.commands,
            "warnings": self.warnings,
        }


class PluginManager:
    """Discovers, filters and registers plugins; owns the :class:`Registry`.

    :param autoload: load entry points; ``False`` loads only those in ``allow``.
        ``None`` reads ``PC3D_DISABLE_PLUGIN_AUTOLOAD``.
    :param allow: load only these plugins; ``None`` reads ``PC3D_PLUGINS`` (unset: all).
    :param block: never load these; ``None`` reads ``PC3D_BLOCK_PLUGINS``.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
    ) -> None:
        if autoload is None:
            autoload = _env_flag(AUTOLOAD_ENV) is not True
        self.autoload = autoload
        allow_names = _env_list(ALLOW_ENV) if allow is None else list(allow)
        block_names = _env_list(BLOCK_ENV) if block is None else list(block)
        self.allow: set[str] | None = (
            {_normalize(n) for n in allow_names} if allow_names is not None else None
        )
        if not self.autoload and self.allow is None:
            self.allow = set()
        self.block: set[str] = {_normalize(n) for n in block_names or ()}
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._objects: dict[str, object] = {}
        self._loaded = False

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> PluginManager:
        """Register the core modules and every selected entry point (once)."""
        if self._loaded:
            return self
        self._loaded = True
        for module_name in CORE_PLUGINS:
            info = PluginInfo(module_name, "pc3d", _version("pc3d"), module_name)
            self._register_loaded(info, lambda name=module_name: importlib.import_module(name))
        for ep in _entry_points():
            dist = ep.dist.metadata["Name"] if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, dist, version, ep.value)
            reason = self._rejection(info)
            if reason is not None:
                info.status, info.error = reason
                self.plugins.append(info)
                continue
            self._register_loaded(info, ep.load)
        for label, names in (("allow list", self.allow), ("block list", self.block)):
            for name in sorted((names or set()) - self._known_names()):
                warnings.warn(
                    f"pc3d plugin {label} names '{name}', which is not an installed plugin",
                    PluginWarning,
                    stacklevel=2,
                )
        return self

    def register_plugin(
        self,
        plugin: object,
        name: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginInfo:
        """Register a plugin object (module, class instance) directly, without an entry point:
        for applications embedding pc3d, notebooks and tests. Not subject to the lists."""
        self._loaded = True
        info = PluginInfo(name, distribution, version, f"<{type(plugin).__name__} {name}>")
        self._register_loaded(info, lambda: plugin)
        return info

    def _rejection(self, info: PluginInfo) -> tuple[str, str] | None:
        keys = self._keys(info)
        if keys & self.block:
            return "blocked", f"blocked by the block list ({BLOCK_ENV})"
        if self.allow is not None and not keys & self.allow:
            if not self.autoload:
                return "disabled", f"autoload disabled ({AUTOLOAD_ENV}) and not in {ALLOW_ENV}"
            return "disabled", f"not in the allow list ({ALLOW_ENV})"
        return None

    def _register_loaded(self, info: PluginInfo, load: Callable[[], object]) -> None:
        self.plugins.append(info)
        try:
            plugin = load()
        except Exception as err:  # noqa: BLE001 - third-party import code: any error is isolated
            self._fail(info, "import failed", err)
            return
        if info.name in self._objects:
            other = next(p for p in self.plugins if p.name == info.name and p is not info)
            self._fail(info, "load failed", PluginError(f"name already used by {other.label}"))
            return
        try:
            self._pm.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as err:
            self._fail(info, "invalid hooks", err)
            return
        unknown = [c.name for c in self._pm.get_hookcallers(plugin) or () if c.spec is None]
        if unknown:
            self._pm.unregister(plugin)
            known = [n for n in dir(hookspecs) if n.startswith("pc3d_")]
            hints = [f"{n} (did you mean {suggest(n, known)}?)" for n in unknown]
            self._fail(info, "invalid hooks", PluginError(f"unknown hook {', '.join(hints)}"))
            return
        registrar = Registrar(info.name, info.distribution)
        try:
            self._hook_for(plugin, "pc3d_register")(registry=registrar)
            dir_lists = self._hook_for(plugin, "pc3d_config_dirs")()
        except Exception as err:  # noqa: BLE001 - a plugin's own bug must not take pc3d down
            self._pm.unregister(plugin)
            self._fail(info, "registration failed", err)
            return
        self._objects[info.name] = plugin
        self.registry._commit(registrar.pending)
        for reg in registrar.pending:
            info.registered.setdefault(reg.kind, []).append(reg.name)
        for dirs in dir_lists:
            for entry in dirs or ():
                path = Path(entry)
                if path.is_dir():
                    info.config_dirs.append(path)
                else:
                    info.warnings.append(f"config dir {path} does not exist")

    def _hook_for(self, plugin: object, hook: str) -> pluggy.HookCaller:
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        return self._pm.subset_hook_caller(hook, remove_plugins=others)

    def _fail(self, info: PluginInfo, stage: str, err: BaseException) -> None:
        info.status = "failed"
        info.error = f"{stage}: {type(err).__name__}: {err}"
        info.error_traceback = "".join(traceback.format_exception(err))
        warnings.warn(
            f"pc3d plugin '{info.name}' ({info.label}) was skipped: {info.error}",
            PluginWarning,
            stacklevel=3,
        )

    def _known_names(self) -> set[str]:
        return set().union(*(self._keys(info) for info in self.plugins))

    @staticmethod
    def _keys(info: PluginInfo) -> set[str]:
        return {_normalize(n) for n in (info.name, info.distribution) if n}

    # -- queries -------------------------------------------------------------------------------

    @property
    def loaded(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "loaded"]

    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "failed"]

    def config_dirs(self) -> list[Path]:
        """Config folders contributed by loaded plugins, in plugin order."""
        return [d for info in self.loaded for d in info.config_dirs]

    def add_cli_commands(
        self, subparsers: argparse._SubParsersAction  # type: ignore[type-arg]
    ) -> None:
        """Let each loaded plugin add ``pc3d`` subcommands; a failing one is reported, skipped."""
        for info in self.loaded:
            plugin = self._objects[info.name]
            before = set(subparsers.choices)
            try:
                self._hook_for(plugin, "pc3d_add_cli_commands")(subparsers=subparsers)
            except Exception as err:  # noqa: BLE001 - isolate third-party CLI code
                message = f"adding CLI commands failed: {type(err).__name__}: {err}"
                info.warnings.append(message)
                warnings.warn(f"pc3d plugin '{info.name}': {message}", PluginWarning, stacklevel=2)
            info.commands = sorted(set(subparsers.choices) - before)


# -- module-level access -------------------------------------------------------------------------

_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded from the environment on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager().load()
    return _manager


def load_plugins(
    *,
    autoload: bool | None = None,
    allow: Iterable[str] | None = None,
    block: Iterable[str] | None = None,
) -> PluginManager:
    """Load plugins with an explicit selection (``None`` reads the environment) and make the
    result the process-wide manager used by :func:`get_registry` and config building."""
    global _manager
    _manager = PluginManager(autoload=autoload, allow=allow, block=block).load()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager; the next use reloads plugins."""
    global _manager
    _manager = None


def get_registry() -> Registry:
    """The registry of the process-wide manager.

    :raises PluginConflictError: two plugins registered the same name (nothing is built until
        one of them is uninstalled or blocked).
    """
    registry = get_plugin_manager().registry
    registry.check()
    return registry


def config_dirs() -> list[Path]:
    """Config folders contributed by the loaded plugins."""
    return get_plugin_manager().config_dirs()


def add_plugin_cli_commands(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    """Called by ``pc3d``'s parser builder: plugins add their subcommands."""
    get_plugin_manager().add_cli_commands(subparsers)


# -- helpers -------------------------------------------------------------------------------------


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``name`` (case-insensitive), or None."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        hint = suggest(kind, KINDS)
        raise PluginError(
            f"unknown component kind '{kind}'"
            + (f"; did you mean '{hint}'?" if hint else "")
            + f" Kinds: {', '.join(KINDS)}"
        )


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_flag(var: str) -> bool | None:
    value = os.environ.get(var)
    if value is None:
        return None
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise PluginError(f"{var}={value!r}: expected 1 or 0")


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var, "").strip()
    if not value:
        return None
    return [part for part in re.split(r"[,\s]+", value) if part]


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)

    def order(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
        dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
        return (_normalize(dist or ""), ep.name)

    return sorted(eps, key=order)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
