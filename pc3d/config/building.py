"""Building components from config mappings: ``{type: Name, ...}`` -> ``Name(**arguments)``.

``Name`` is looked up in the plugin registry under the component's kind (see
:mod:`pc3d.config.kinds`); the other keys become keyword arguments, checked against the
constructor's signature and type hints (:mod:`pc3d.config.type_checks`) after the components
nested in them are built, depth first.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pc3d.config.dumping import recorded_distribution
from pc3d.config.keys import KIND_KEY, TYPE_KEY, ConfigError
from pc3d.config.kinds import ARGUMENT_KINDS, argument_kind, component_kind
from pc3d.config.node import ConfigNode
from pc3d.config.type_checks import conform, describe_value
from pc3d.errors import Pc3dError, did_you_mean
from pc3d.plugin_discovery import distribution_version
from pc3d.plugin_manager import get_registry
from pc3d.registry import KINDS, Registry, UnknownComponentError, describe_unknown_kind, normalize_plugin_name

if TYPE_CHECKING:
    from pc3d.plugin_manager import PluginInfo

__all__ = ["build", "check_component"]


def build(node: ConfigNode | Mapping[str, Any], kind: str, *, registry: Registry | None = None) -> Any:
    """Build the component described by ``node``, a mapping with ``type: Name``.

    ``Name`` is looked up among the registered components of ``kind``. The other keys become
    keyword arguments, checked against the component's signature: an unknown key, a missing
    required argument or a value of the wrong type is a :class:`ConfigError` naming the key's
    dotted path and the file and line it came from, with a "did you mean" where one is close.

    Nested component mappings are built first. Their kind is declared by their place (the
    parent's type hint or :data:`pc3d.config.kinds.ARGUMENT_KINDS`) or by a ``kind:`` key in the
    mapping; it is never guessed. A mapping without ``type`` is passed on as a plain ``dict``
    (with any components inside it built).

    Args:
        node: ``config.node("model")``, or a plain mapping (errors then name no file).
        kind: The kind to look ``type`` up in (``"model"``, ``"head"``, ...).
        registry: A plugin registry; default: the loaded plugins'.

    Returns:
        The built component.

    Raises:
        ConfigError: Anything wrong with the mapping, or the constructor rejected its arguments.
    """
    if kind not in KINDS:
        raise ConfigError(describe_unknown_kind(kind))
    if not isinstance(node, ConfigNode):
        node = ConfigNode(node)
    if registry is not None:
        return _Builder(registry).component(node, kind)
    from pc3d.plugin_manager import get_plugin_manager  # late: it imports the plugins

    return _Builder(get_registry(), get_plugin_manager().plugins).component(node, kind)


def check_component(
    node: ConfigNode | Mapping[str, Any], kind: str, *, registry: Registry | None = None
) -> None:
    """Check the component mapping at ``node`` as :func:`build` would, without building it.

    Every ``type`` is looked up, every key checked against its constructor's signature and every
    plain value against its type hint (bounds included), nested components too; no constructor
    is called. For a component that reads files or generates data when built (a dataset), this
    is the check that costs nothing (``pc3d config show --check``). What only the constructor
    checks (a data folder that does not exist) is left to the build.

    Raises:
        ConfigError: as :func:`build`.
    """
    if kind not in KINDS:
        raise ConfigError(describe_unknown_kind(kind))
    if not isinstance(node, ConfigNode):
        node = ConfigNode(node)
    if registry is not None:
        _Builder(registry, dry=True).component(node, kind)
        return
    from pc3d.plugin_manager import get_plugin_manager  # late: it imports the plugins

    _Builder(get_registry(), get_plugin_manager().plugins, dry=True).component(node, kind)


class _Unbuilt:
    """What a dry builder returns for a component: checked, not built."""


_UNBUILT = _Unbuilt()


def _holds_unbuilt(value: Any) -> bool:
    if value is _UNBUILT:
        return True
    if isinstance(value, Mapping):
        return any(_holds_unbuilt(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_unbuilt(v) for v in value)
    return False


class _Builder:
    """Builds one component tree against one registry (or, ``dry``, only checks it)."""

    def __init__(self, registry: Registry, plugins: Sequence[PluginInfo] = (), *, dry: bool = False) -> None:
        self.dry = dry
        self.registry = registry
        # The plugin manager's plugins when the registry is the manager's: error messages name
        # the installed plugins that are not loaded.
        self.plugins = plugins

    def component(self, node: ConfigNode, declared: str | None) -> Any:
        """Build the component mapping at ``node``; ``declared``: the kind its place declares."""
        value = node.value
        expected = f"'{TYPE_KEY}: <{declared or 'component'} name>'"
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{node.where()}: expected a mapping with {expected}, got {describe_value(value)}"
            )
        type_name = value.get(TYPE_KEY)
        if not isinstance(type_name, str):
            problem = "missing" if TYPE_KEY not in value else f"must be a name, got {type_name!r}"
            raise ConfigError(f"{node.where(TYPE_KEY)}: {TYPE_KEY} {problem}; write {expected}")
        kind = component_kind(node, declared, type_name)
        try:
            target = self.registry.get(kind, type_name)
        except UnknownComponentError as err:
            recorded = self.recorded_plugin(node, type_name)
            hint = f" {recorded}" if recorded else ""
            raise ConfigError(
                f"{node.where(TYPE_KEY)}: {err}{hint}{self.plugin_hint(node, type_name, recorded)}"
            ) from None
        label = f"{kind} '{type_name}'"
        kwargs = self.arguments(node, target, label, type_name)
        if self.dry:
            return _UNBUILT
        try:
            return target(**kwargs)
        except ConfigError:
            raise
        except (Pc3dError, ValueError, TypeError) as err:
            # The component rejected its arguments: say which config mapping caused it.
            raise ConfigError(f"{node.where()}: building {label} failed: {err}") from err

    def arguments(
        self, node: ConfigNode, target: Callable[..., Any], label: str, type_name: str
    ) -> dict[str, Any]:
        """The keyword arguments for ``target``: nested components built, keys and types checked."""
        try:
            signature: inspect.Signature | None = inspect.signature(target)
        except (TypeError, ValueError):
            signature = None  # builtins without a signature: leave the checking to the call
        params = signature.parameters if signature is not None else {}
        accepts_any = signature is None or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        named = {name: p for name, p in params.items() if p.kind in keyword}
        hints = _type_hints(target)
        kwargs: dict[str, Any] = {}
        for key in node.value:
            if key in (TYPE_KEY, KIND_KEY):
                continue
            if not isinstance(key, str) or (key not in named and not accepts_any):
                raise ConfigError(
                    f"{node.where(str(key))}: unknown argument '{key}' for {label}"
                    f"{did_you_mean(str(key), named)}; "
                    f"{type_name} accepts: {', '.join(named) or 'no arguments'}"
                )
            child = node.child(key)
            built = self.value(child, argument_kind(key, hints.get(key)))
            # An unbuilt component (dry run) cannot be checked against its argument's type.
            kwargs[key] = built if _holds_unbuilt(built) else conform(child.with_value(built), hints.get(key))
        missing = [n for n, p in named.items() if p.default is inspect.Parameter.empty and n not in kwargs]
        if missing:
            raise ConfigError(
                f"{node.where()}: {label} is missing required argument"
                f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"
            )
        return kwargs

    def value(self, node: ConfigNode, kind: str | None) -> Any:
        """``node``'s value with the components in it built (``kind``: declared by its place)."""
        value = node.value
        if isinstance(value, Mapping):
            if TYPE_KEY in value:
                return self.component(node, kind)
            return {k: self.value(node.child(k), ARGUMENT_KINDS.get(str(k))) for k in value}
        if isinstance(value, list):
            return [self.value(node.child(i), kind) for i in range(len(value))]
        return value

    def recorded_plugin(self, node: ConfigNode, type_name: str) -> str | None:
        """For an unknown ``type_name`` that the config's ``_plugins_`` (written with every
        resolved config) attributes to a plugin: which plugin that is and what is wrong with it."""
        dist = recorded_distribution(node.config.data, type_name) if node.config is not None else None
        if dist is None or self.registry.find(type_name):
            return None  # registered as another kind: the registry's message says so
        said = f"{type_name} comes from the plugin {dist}"
        key = normalize_plugin_name(dist)
        if any(
            e.distribution and normalize_plugin_name(e.distribution) == key for e in self.registry.entries()
        ):
            version = distribution_version(dist)
            return (
                f"{said}, but the installed {dist}{f' {version}' if version else ''} does not register it "
                "(renamed or removed since the config was written?)."
            )
        info = next(
            (p for p in self.plugins if p.distribution and normalize_plugin_name(p.distribution) == key), None
        )
        if info is not None and info.status != "loaded":
            reason = info.error or info.status
            if info.status not in reason:
                reason = f"{info.status}: {reason}"
            return f"{said}, which is installed but not loaded ({reason}); see `pc3d plugins`."
        if distribution_version(dist) is None:
            return f"{said}, which is not installed (pip install {dist})."
        return f"{said}, which is installed but not loaded here; see `pc3d plugins`."

    def plugin_hint(self, node: ConfigNode, type_name: str, recorded: str | None = None) -> str:
        """What to tell about plugins when ``type_name`` is unknown: which are installed, and
        (unless ``recorded`` already says which plugin provides it) whether the config looks
        like it was written for one that is not."""
        entries = self.registry.entries()
        owners = sorted({e.owner for e in entries})
        text = f" Loaded plugins: {', '.join(owners) or 'none'}."
        idle = [f"{p.label} ({p.status})" for p in self.plugins if p.status != "loaded"]
        if idle:
            text += f" Installed but not loaded: {', '.join(idle)}."
        if recorded:
            return text
        packages = {getattr(e.obj, "__module__", "").split(".")[0] for e in entries}
        names = [n for e in entries for n in (e.plugin, e.owner)] + sorted(packages)
        known = {normalize_plugin_name(n) for n in names}
        prefix = type_name.split(".", 1)[0] if "." in type_name else None
        if prefix is not None and normalize_plugin_name(prefix) not in known:
            return text + (
                f" '{type_name}' looks like it comes from a plugin '{prefix}', which is not installed "
                "or not enabled (`pc3d plugins` lists installed ones)."
            )
        file = _origin_file(node)
        package = _package_of(file) if file is not None else None
        if package is not None and package not in packages:
            return text + (
                f" {file} ships with the package '{package}', which registers no components here: "
                f"the plugin providing '{type_name}' may not be installed or enabled "
                "(`pc3d plugins` lists installed ones)."
            )
        return text


def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError, AttributeError):
        return {}  # annotations we cannot resolve are not checked


def _origin_file(node: ConfigNode) -> Path | None:
    """The config file the ``type:`` key at ``node`` came from, if it came from a file."""
    origin = node.origin(node.path + (TYPE_KEY,))
    file, sep, line = origin.rpartition(":")
    if sep and line.isdigit() and Path(file).is_file():
        return Path(file)
    if node.config is not None and node.config.path is not None:
        return node.config.path
    return None


def _package_of(file: Path, depth: int = 4) -> str | None:
    """The top-level Python package ``file`` lies in (looking at most ``depth`` folders up)."""
    package = None
    for folder in file.resolve().parents:
        if (folder / "__init__.py").is_file():
            package = folder.name
        elif package is not None or depth <= 0:
            break
        depth -= 1
    return package
