"""Plugin discovery (entry-point group ``pc3d``), selection and failure isolation.

Every installed distribution with an entry point in the group ``pc3d`` is a plugin. Each is
loaded and registered on its own, so a plugin that raises on import or in a hook is reported
(name, distribution, error) and skipped while everything else keeps working. What plugins
implement is in :mod:`pc3d.plugin_api`; what they registered is in :mod:`pc3d.registry`.

Selection, from the environment or the Python API (:func:`load_plugins`):

- ``PC3D_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry point except those named in the allow list;
- ``PC3D_PLUGINS=a,b``: allow list, load only these;
- ``PC3D_BLOCK_PLUGINS=c``: block list, never load these (wins over the allow list).

A plugin is named by its entry-point name (``det3d``) or its distribution (``pc3d-det3d``);
case, ``-``, ``_`` and ``.`` do not matter. The core modules in :data:`CORE_PLUGINS` go through
the same hooks but are always loaded: the switches select plugins, not the core.

The entry-point groups, the switches' parsing and the per-plugin record (:class:`PluginInfo`) are
in :mod:`pc3d.plugin_discovery`; this module loads, isolates and keeps the process-wide manager.
"""

from __future__ import annotations

import functools
import importlib
import traceback
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import pluggy

from pc3d import plugin_api
from pc3d.errors import did_you_mean
from pc3d.plugin_discovery import (
    ALLOW_ENV,
    AUTOLOAD_ENV,
    COMMANDS_GROUP,
    ENTRY_POINT_GROUP,
    PluginInfo,
    PluginWarning,
    commands_by_distribution,
    distribution_name,
    distribution_version,
    entry_points,
    env_flag,
    env_list,
)
from pc3d.registry import BLOCK_ENV, PluginError, Registry, normalize_plugin_name

__all__ = [
    "ALLOW_ENV",
    "AUTOLOAD_ENV",
    "BLOCK_ENV",
    "COMMANDS_GROUP",
    "CORE_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "PluginWarning",
    "config_dirs",
    "get_plugin_manager",
    "get_registry",
    "load_plugins",
    "reset_plugin_manager",
]

#: Modules of pc3d itself that implement hooks. They go through the same hooks as outside
#: plugins (distribution ``pc3d``) but are always loaded.
CORE_PLUGINS: tuple[str, ...] = (
    "pc3d.nn.plugin",
    "pc3d.data.plugin",
    "pc3d.evaluation.plugin",
    "pc3d.config.zoo",
)


class PluginManager:
    """Discovers, filters and registers plugins; owns the :class:`~pc3d.registry.Registry`.

    Args:
        autoload: Load entry points; ``False`` loads only those in ``allow``. ``None`` reads
            ``PC3D_DISABLE_PLUGIN_AUTOLOAD``.
        allow: Load only these plugins; ``None`` reads ``PC3D_PLUGINS`` (unset: all).
        block: Never load these; ``None`` reads ``PC3D_BLOCK_PLUGINS``.

    Raises:
        PluginError: ``PC3D_DISABLE_PLUGIN_AUTOLOAD`` is neither 1 nor 0.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
    ) -> None:
        if autoload is None:
            autoload = env_flag(AUTOLOAD_ENV) is not True
        self.autoload = autoload
        allow_names = env_list(ALLOW_ENV) if allow is None else list(allow)
        block_names = env_list(BLOCK_ENV) if block is None else list(block)
        self.allow: set[str] | None = (
            {normalize_plugin_name(n) for n in allow_names} if allow_names is not None else None
        )
        if not self.autoload and self.allow is None:
            self.allow = set()
        self.block: set[str] = {normalize_plugin_name(n) for n in block_names or ()}
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []
        self._pm = pluggy.PluginManager(plugin_api.PROJECT_NAME)
        self._pm.add_hookspecs(plugin_api)
        self._objects: dict[str, object] = {}
        self._loaded = False

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> PluginManager:
        """Register the core modules and every selected entry point (once).

        Returns:
            This manager.
        """
        if self._loaded:
            return self
        self._loaded = True
        for module_name in CORE_PLUGINS:
            info = PluginInfo(module_name, "pc3d", distribution_version("pc3d"), module_name)
            self._register_loaded(info, functools.partial(importlib.import_module, module_name))
        commands = commands_by_distribution()
        for ep in entry_points(ENTRY_POINT_GROUP):
            dist = distribution_name(ep)
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(ep.name, dist, version, ep.value)
            info.commands = commands.get(normalize_plugin_name(dist or ""), [])
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
        """Register a plugin object (module, class instance) directly, without an entry point.

        For applications embedding pc3d, notebooks and tests; not subject to the lists. A
        failure is reported like an entry point's (status ``failed`` and a warning).

        Args:
            plugin: An object whose ``pc3d_*`` attributes are marked with ``@hookimpl``.
            name: The plugin's name (unique among the loaded plugins).
            distribution: The distribution to credit its registrations to.
            version: Its version, for listings.

        Returns:
            What the manager recorded about it.
        """
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
        except Exception as err:  # third-party import code: any error is isolated
            self._fail(info, "import failed", err)
            return
        if info.name in self._objects:
            other = next(p for p in self.plugins if p.name == info.name and p is not info)
            self._fail(info, "load failed", PluginError(f"name already used by {other.label}"))
            return
        if not self._add_to_pluggy(info, plugin):
            return
        registrar = plugin_api.Registrar(info.name, info.distribution)
        try:
            self._hook_for(plugin, "pc3d_register")(registry=registrar)
            dir_lists = self._hook_for(plugin, "pc3d_config_dirs")()
        except Exception as err:  # a plugin's own bug must not take pc3d down
            self._pm.unregister(plugin)
            self._fail(info, "registration failed", err)
            return
        self._objects[info.name] = plugin
        self.registry.commit(registrar.pending)
        for reg in registrar.pending:
            info.registered.setdefault(reg.kind, []).append(reg.name)
        for dirs in dir_lists:
            for entry in dirs or ():
                path = Path(entry)
                if path.is_dir():
                    info.config_dirs.append(path)
                else:
                    info.warnings.append(f"config dir {path} does not exist")

    def _add_to_pluggy(self, info: PluginInfo, plugin: object) -> bool:
        """Register ``plugin``'s hook functions; False (and the plugin failed) if they are bad."""
        try:
            self._pm.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as err:
            self._fail(info, "invalid hooks", err)
            return False
        unknown = [c.name for c in self._pm.get_hookcallers(plugin) or () if c.spec is None]
        if unknown:
            self._pm.unregister(plugin)
            hints = ", ".join(_unknown_hook(name) for name in unknown)
            self._fail(info, "invalid hooks", PluginError(f"unknown hook {hints}"))
            return False
        return True

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
        return {normalize_plugin_name(n) for n in (info.name, info.distribution) if n}

    # -- queries -------------------------------------------------------------------------------

    @property
    def loaded(self) -> list[PluginInfo]:
        """The plugins that loaded and registered, in load order."""
        return [p for p in self.plugins if p.status == "loaded"]

    @property
    def failed(self) -> list[PluginInfo]:
        """The plugins that failed (import, hooks or registration)."""
        return [p for p in self.plugins if p.status == "failed"]

    def config_dirs(self) -> list[Path]:
        """Config folders contributed by loaded plugins, in plugin order."""
        return [d for info in self.loaded for d in info.config_dirs]


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
    """Load plugins with an explicit selection and make it the process-wide manager.

    The result is what :func:`get_registry` and config building use.

    Args:
        autoload: As :class:`PluginManager`'s (``None`` reads the environment).
        allow: As :class:`PluginManager`'s.
        block: As :class:`PluginManager`'s.

    Returns:
        The new process-wide manager, loaded.
    """
    global _manager
    _manager = PluginManager(autoload=autoload, allow=allow, block=block).load()
    return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager; the next use reloads plugins."""
    global _manager
    _manager = None


def config_dirs() -> list[Path]:
    """Config folders contributed by the loaded plugins."""
    return get_plugin_manager().config_dirs()


# -- helpers -------------------------------------------------------------------------------------


def _unknown_hook(name: str) -> str:
    """``name`` with what was probably meant."""
    if name == "pc3d_add_cli_commands":
        return f"{name} (plugin commands are entry points of the group {COMMANDS_GROUP})"
    hint = did_you_mean(name, plugin_api.HOOK_NAMES)
    return f"{name}{hint}" if hint else f"{name} (hooks: {', '.join(plugin_api.HOOK_NAMES)})"


def get_registry() -> Registry:
    """The registry of the process-wide plugin manager (loading plugins on first use).

    Returns:
        The registry every config build uses by default.

    Raises:
        PluginConflictError: Two plugins registered the same name (nothing is built until one of
            them is uninstalled or blocked).
    """
    registry = get_plugin_manager().registry
    registry.check()
    return registry
