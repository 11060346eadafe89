"""YAML configs: ``_base_`` inheritance, ``--set`` overrides, provenance, and building components.

A config is YAML *data*, read with ``yaml.safe_load``; nothing in it is ever executed.

- ``_base_: a.yaml`` or ``_base_: [a.yaml, b.yaml]`` (top level only): the bases are merged in
  order, then the file itself on top. A base path is relative to the including file; if it is
  not there it is looked up in the config folders plugins contribute (``pc3d_config_dirs``).
- Merging: mappings merge key by key, recursively; anything else (lists, scalars, ``null``)
  replaces the base value. ``_replace_: true`` inside a mapping replaces the base mapping at that
  place as a whole instead of merging into it.
- Overrides: ``model.head.num_classes=3`` sets one key; the right-hand side is YAML
  (``3`` is an int, ``[1, 2]`` a list, ``'3'`` a string, ``null`` None). List items are
  addressed by index: ``pipeline.0.type=Flip``.
- Every key remembers where it came from (``file:line`` or ``--set ...``); errors quote it.
- A mapping with ``type: Name`` is a component: :func:`build` looks ``Name`` up in the plugin
  registry and calls it with the other keys as keyword arguments, after checking them against
  its signature.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import os
import re
import tempfile
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pc3d.errors import Pc3dError

__all__ = [
    "BASE_KEY",
    "REPLACE_KEY",
    "TYPE_KEY",
    "Config",
    "ConfigError",
    "ConfigNode",
    "apply_overrides",
    "build",
    "dump_config",
    "find_config",
    "list_configs",
    "load_config",
    "merge",
]

BASE_KEY = "_base_"
REPLACE_KEY = "_replace_"
TYPE_KEY = "type"
CONFIG_SUFFIXES = (".yaml", ".yml")

KeyPath = tuple[str, ...]
_MISSING: Any = object()


class ConfigError(Pc3dError, ValueError):
    """A config file, override or component mapping is wrong (the message names the key's dotted
    path and the file and line it came from)."""


def _dotted(path: KeyPath) -> str:
    return ".".join(path) if path else "<root>"


@dataclass
class Config:
    """A fully resolved config: plain YAML data plus where each key came from.

    :ivar data: the merged mapping (dicts, lists, scalars only).
    :ivar sources: dotted key path -> ``file:line`` or ``--set key=value``.
    :ivar path: the file it was loaded from.
    :ivar overrides: the ``--set`` items applied, in order.
    """

    data: dict[str, Any]
    sources: dict[KeyPath, str] = field(default_factory=dict)
    path: Path | None = None
    overrides: tuple[str, ...] = ()

    def get(self, key: str, default: Any = _MISSING) -> Any:
        """The value at dotted ``key`` (``model.head.num_classes``), or ``default``."""
        try:
            return _lookup(self.data, _split_key(key))
        except (KeyError, IndexError, TypeError):
            if default is not _MISSING:
                return default
            raise ConfigError(f"{self._describe_missing(key)}") from None

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING_SENTINEL) is not _MISSING_SENTINEL

    def node(self, key: str = "") -> ConfigNode:
        """A view of the value at ``key`` that knows its path and origin (for :func:`build`)."""
        path = _split_key(key) if key else ()
        return ConfigNode(self.get(key) if key else self.data, path, self)

    def origin(self, path: KeyPath | str) -> str:
        """Where the key at ``path`` (or its closest ancestor) was set."""
        if isinstance(path, str):
            path = _split_key(path)
        for end in range(len(path), -1, -1):
            found = self.sources.get(path[:end])
            if found is not None:
                return found
        return str(self.path) if self.path else "<config>"

    def to_yaml(self) -> str:
        """The resolved config as YAML (key order kept; short scalar lists inline)."""
        return yaml.dump(self.data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    def _describe_missing(self, key: str) -> str:
        path = _split_key(key)
        parent_path = path[:-1]
        try:
            parent = _lookup(self.data, parent_path)
        except (KeyError, IndexError, TypeError):
            parent = None
        message = f"config has no key '{key}'"
        if isinstance(parent, Mapping):
            hint = difflib.get_close_matches(path[-1], [str(k) for k in parent], n=1)
            if hint:
                message += f"; did you mean '{_dotted(parent_path + (hint[0],))}'?"
        return message + (f" ({self.path})" if self.path else "")


_MISSING_SENTINEL: Any = object()


@dataclass(frozen=True)
class ConfigNode:
    """A value inside a :class:`Config` with its dotted path, so errors can name both."""

    value: Any
    path: KeyPath = ()
    config: Config | None = None

    def child(self, key: str | int) -> ConfigNode:
        return ConfigNode(self.value[key], self.path + (str(key),), self.config)

    def origin(self, path: KeyPath | None = None) -> str:
        path = self.path if path is None else path
        return self.config.origin(path) if self.config is not None else "<dict>"

    def where(self, key: str | None = None) -> str:
        """``model.head.foo (from file.yaml:12)`` for error messages."""
        path = self.path + ((key,) if key is not None else ())
        return f"{_dotted(path)} (from {self.origin(path)})"


# -- loading -------------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    *,
    search_dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> Config:
    """Load a YAML config with its ``_base_`` chain and apply ``--set`` style overrides.

    :param path: a file, or a bare config name found in ``search_dirs``.
    :param overrides: ``dotted.key=yaml_value`` items, applied in order after merging.
    :param search_dirs: where bases and bare names are looked up after the including file's
        folder; ``None`` uses the folders contributed by plugins.
    :raises ConfigError: missing file, invalid YAML (with line), base cycle, bad override.
    """
    dirs = _search_dirs(search_dirs)
    file = find_config(path, dirs)
    data, sources = _load_file(file, (), dirs)
    config = Config(data, sources, file)
    return apply_overrides(config, overrides)


def find_config(
    name: str | os.PathLike[str], search_dirs: Sequence[str | os.PathLike[str]] | None = None
) -> Path:
    """Resolve a config path: an existing file as given, else ``name`` in ``search_dirs``
    (``None``: the plugins' config folders)."""
    path = Path(name)
    # A bare name may leave out the suffix: `pc3d config show bevdet-tiny_kitti-3class`.
    names = [path]
    if not path.suffix:
        names += [path.with_name(path.name + suffix) for suffix in CONFIG_SUFFIXES]
    for candidate in names:
        if candidate.is_file():
            return candidate
    dirs = _search_dirs(search_dirs)
    if not path.is_absolute():
        for folder in dirs:
            for candidate in names:
                if (folder / candidate).is_file():
                    return folder / candidate
    known = [p.name for p in list_configs(dirs)]
    hint = difflib.get_close_matches(path.name, known, n=1)
    message = f"config {str(name)!r} not found"
    if dirs and not path.is_absolute():
        message += f" (also looked in {', '.join(str(d) for d in dirs)})"
    if hint:
        message += f"; did you mean '{hint[0]}'?"
    raise ConfigError(message)


def list_configs(search_dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` file in the config folders (recursively), sorted."""
    found: list[Path] = []
    for folder in _search_dirs(search_dirs):
        found.extend(
            sorted(p for p in folder.rglob("*") if p.suffix in CONFIG_SUFFIXES and p.is_file())
        )
    return found


def _search_dirs(search_dirs: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    if search_dirs is None:
        from pc3d.plugins import config_dirs  # late: loading plugins imports their packages

        return config_dirs()
    return [Path(d) for d in search_dirs]


def _load_file(
    file: Path, stack: tuple[Path, ...], search_dirs: Sequence[Path]
) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    resolved = file.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack[stack.index(resolved) :], resolved))
        raise ConfigError(f"{file}: _base_ cycle: {chain}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read config: {err}") from err
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader), file)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a config must be a mapping at top level, got {_kind(data)}")
    sources = {path: f"{file}:{line}" for path, line in lines.items()}
    _check_reserved(data, (), sources, file)

    base_value = data.pop(BASE_KEY, [])
    bases = [base_value] if isinstance(base_value, str) else base_value
    base_origin = sources.get((BASE_KEY,), str(file))
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{base_origin}: {BASE_KEY} must be a file name or a list of them")
    merged: dict[str, Any] = {}
    merged_sources: dict[KeyPath, str] = {}
    for base in bases:
        base_file = _resolve_base(base, file, search_dirs, base_origin)
        base_data, base_sources = _load_file(base_file, (*stack, resolved), search_dirs)
        merged = _merge(merged, base_data, (), merged_sources, base_sources)
    own_sources = {
        p: s for p, s in sources.items() if p[:1] != (BASE_KEY,) and REPLACE_KEY not in p
    }
    return _merge(merged, data, (), merged_sources, own_sources), merged_sources


def _resolve_base(base: str, including: Path, search_dirs: Sequence[Path], origin: str) -> Path:
    candidate = including.parent / base
    if candidate.is_file():
        return candidate
    if not Path(base).is_absolute():
        for folder in search_dirs:
            if (folder / base).is_file():
                return folder / base
    looked = [str(including.parent)] + [str(d) for d in search_dirs]
    raise ConfigError(f"{origin}: _base_ {base!r} not found (looked in {', '.join(looked)})")


def _key_lines(node: yaml.Node | None, file: Path, prefix: KeyPath = ()) -> dict[KeyPath, int]:
    """Dotted key path -> 1-based line of the key, from the composed YAML node tree.

    Also rejects a key repeated in one mapping, which YAML loaders silently resolve to the last.
    """
    lines: dict[KeyPath, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue  # merge keys and complex keys: the parent's line is the best we know
            path = prefix + (key_node.value,)
            line = key_node.start_mark.line + 1
            if path in lines:
                raise ConfigError(
                    f"{file}:{line}: duplicate key '{_dotted(path)}' (first on line {lines[path]})"
                )
            lines[path] = line
            lines.update(_key_lines(value_node, file, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = prefix + (str(index),)
            lines[path] = item.start_mark.line + 1
            lines.update(_key_lines(item, file, path))
    return lines


def _check_reserved(value: Any, path: KeyPath, sources: dict[KeyPath, str], file: Path) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            here = path + (str(key),)
            where = sources.get(here, str(file))
            if key == BASE_KEY and path:
                raise ConfigError(
                    f"{_dotted(here)} (from {where}): {BASE_KEY} is only allowed at top level"
                )
            if key == REPLACE_KEY and not isinstance(item, bool):
                raise ConfigError(
                    f"{_dotted(here)} (from {where}): {REPLACE_KEY} must be true or false, "
                    f"got {item!r}"
                )
            _check_reserved(item, here, sources, file)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_reserved(item, path + (str(index),), sources, file)


# -- merging -------------------------------------------------------------------------------------


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base`` (new dict; inputs untouched).

    Mappings merge recursively; lists, scalars and ``None`` replace; a mapping holding
    ``_replace_: true`` replaces the base mapping instead of merging into it.
    """
    return _merge(dict(base), dict(override), (), {}, {})


def _merge(
    base: dict[str, Any],
    override: dict[str, Any],
    prefix: KeyPath,
    sources: dict[KeyPath, str],
    override_sources: Mapping[KeyPath, str],
) -> dict[str, Any]:
    """Merge ``override`` onto ``base`` (returns a new dict); updates ``sources`` in place so
    that each key keeps the origin of the value that won."""
    result = dict(base)
    for key, value in override.items():
        if key == REPLACE_KEY:
            continue
        path = prefix + (str(key),)
        if isinstance(value, dict) and not value.get(REPLACE_KEY) and isinstance(
            result.get(key), dict
        ):
            result[key] = _merge(result[key], value, path, sources, override_sources)
        else:
            _drop_under(sources, path)
            result[key] = _without_replace(value)
            sources.update(
                (p, s) for p, s in override_sources.items() if p[: len(path)] == path
            )
        if path in override_sources:
            sources[path] = override_sources[path]
    return result


def _without_replace(value: Any) -> Any:
    """A copy of ``value`` without ``_replace_`` keys. Copying also unshares YAML aliases
    (``*anchor``), so that an override changes one place only."""
    if isinstance(value, dict):
        return {k: _without_replace(v) for k, v in value.items() if k != REPLACE_KEY}
    if isinstance(value, list):
        return [_without_replace(v) for v in value]
    return value


def _drop_under(sources: dict[KeyPath, str], path: KeyPath) -> None:
    for key in [p for p in sources if p[: len(path)] == path]:
        del sources[key]


# -- overrides -----------------------------------------------------------------------------------


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Apply ``dotted.key=value`` items (value parsed as YAML) to ``config`` in place.

    Intermediate mappings are created as needed; a list item is addressed by its index. A
    mapping value replaces the one in the config (``--set`` says exactly what it sets).
    """
    applied = list(config.overrides)
    for item in overrides:
        origin = f"--set {item}"
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{origin}: expected KEY=VALUE, e.g. model.head.num_classes=3")
        path = _split_key(key)
        if path[0] == BASE_KEY:
            raise ConfigError(f"{origin}: {BASE_KEY} cannot be overridden; load another file")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"{origin}: value is not valid YAML: {err}") from err
        _set(config, path, _without_replace(value), origin)
        applied.append(item)
    config.overrides = tuple(applied)
    return config


def _set(config: Config, path: KeyPath, value: Any, origin: str) -> None:
    container: Any = config.data
    for depth, key in enumerate(path[:-1]):
        here = path[: depth + 1]
        if isinstance(container, dict):
            if key not in container or container[key] is None:
                container[key] = {}
            container = container[key]
        elif isinstance(container, list):
            container = container[_index(container, key, here, origin)]
        else:
            raise ConfigError(
                f"{origin}: cannot set {_dotted(path)}: {_dotted(here[:-1])} is "
                f"{_kind(container)} (from {config.origin(here[:-1])}), not a mapping or list"
            )
    last = path[-1]
    if isinstance(container, dict):
        container[last] = value
    elif isinstance(container, list):
        container[_index(container, last, path, origin)] = value
    else:
        raise ConfigError(
            f"{origin}: cannot set {_dotted(path)}: {_dotted(path[:-1])} is {_kind(container)} "
            f"(from {config.origin(path[:-1])}), not a mapping or list"
        )
    _drop_under(config.sources, path)
    config.sources[path] = origin
    for sub in _sub_paths(value, path):
        config.sources[sub] = origin


def _index(container: list[Any], key: str, path: KeyPath, origin: str) -> int:
    try:
        index = int(key)
    except ValueError:
        raise ConfigError(
            f"{origin}: {_dotted(path)}: '{key}' indexes a list, so it must be an integer"
        ) from None
    if not -len(container) <= index < len(container):
        raise ConfigError(
            f"{origin}: {_dotted(path)}: index {index} out of range (list of {len(container)})"
        )
    return index


def _sub_paths(value: Any, prefix: KeyPath) -> list[KeyPath]:
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    paths: list[KeyPath] = []
    for key, item in items:
        path = prefix + (str(key),)
        paths.append(path)
        paths.extend(_sub_paths(item, path))
    return paths


def _split_key(key: str) -> KeyPath:
    parts = tuple(key.split("."))
    if any(not part for part in parts):
        raise ConfigError(f"invalid key {key!r}: empty part between dots")
    return parts


def _lookup(data: Any, path: KeyPath) -> Any:
    for key in path:
        if isinstance(data, list):
            data = data[int(key)]
        elif isinstance(data, dict):
            data = data[key]
        else:
            raise TypeError(key)
    return data


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a bool", int: "an int"}
    if value is None:
        return "null"
    return names.get(type(value), f"a {type(value).__name__}")


# -- building ------------------------------------------------------------------------------------


def build(
    node: ConfigNode | Mapping[str, Any],
    kind: str,
    *,
    registry: Any | None = None,
) -> Any:
    """Build the component described by ``node`` (a mapping with ``type: Name``).

    ``Name`` is looked up among the registered components of ``kind``. The other keys become
    keyword arguments, checked against the component's signature: an unknown key, a missing
    required argument or a scalar of the wrong type is a :class:`ConfigError` naming the key's
    dotted path and the file and line it came from, with a "did you mean" where one is close.

    Nested component mappings are built first (depth first). Their kind comes from the argument
    name when it is a kind (``backbone:``, ``head:``, ``voxel_encoder:``; plural names such as
    ``transforms:`` for lists), otherwise the name is looked up across all kinds. A mapping
    without ``type`` is passed on as a plain ``dict`` (with any components inside it built).

    :param node: ``config.node("model")``, or a plain mapping (errors then lack file names).
    :param kind: the kind to look ``type`` up in (``"model"``, ``"head"``, ...).
    :param registry: a :class:`pc3d.plugins.Registry`; default: the loaded plugins'.
    """
    from pc3d.plugins import KINDS, get_registry

    if kind not in KINDS:
        raise ConfigError(f"unknown component kind '{kind}'; kinds: {', '.join(KINDS)}")
    if not isinstance(node, ConfigNode):
        node = ConfigNode(node)
    return _build_component(node, kind, registry if registry is not None else get_registry())


def _build_component(node: ConfigNode, kind: str | None, registry: Any) -> Any:
    from pc3d.plugins import UnknownComponentError

    value = node.value
    expected = f"'{TYPE_KEY}: <{kind or 'component'} name>'"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{node.where()}: expected a mapping with {expected}, got {_kind(value)}")
    type_name = value.get(TYPE_KEY)
    if not isinstance(type_name, str):
        problem = "missing" if TYPE_KEY not in value else f"must be a name, got {type_name!r}"
        raise ConfigError(f"{node.where(TYPE_KEY)}: {TYPE_KEY} {problem}; write {expected}")
    try:
        if kind is None:
            kind = _infer_kind(type_name, registry, node)
        target = registry.get(kind, type_name)
    except UnknownComponentError as err:
        raise ConfigError(f"{node.where(TYPE_KEY)}: {err}") from None

    label = f"{kind} '{type_name}'"
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None  # builtins without a signature: leave the checking to the call
    params = signature.parameters if signature is not None else {}
    accepts_any = signature is None or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    named = {
        name: p
        for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    hints = _type_hints(target)

    kwargs: dict[str, Any] = {}
    for key in value:
        if key == TYPE_KEY:
            continue
        if not isinstance(key, str) or (key not in named and not accepts_any):
            hint = difflib.get_close_matches(str(key), list(named), n=1)
            raise ConfigError(
                f"{node.where(str(key))}: unknown argument '{key}' for {label}"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
                + f" {type_name} accepts: {', '.join(named) or 'no arguments'}"
            )
        built = _build_value(node.child(key), key, registry)
        _check_type(built, hints.get(key), node, key)
        kwargs[key] = built

    missing = [
        name
        for name, p in named.items()
        if p.default is inspect.Parameter.empty and name not in kwargs
    ]
    if missing:
        raise ConfigError(
            f"{node.where()}: {label} is missing required argument"
            f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}"
        )
    try:
        return target(**kwargs)
    except ConfigError:
        raise
    except (Pc3dError, ValueError, TypeError) as err:
        # The component rejected its arguments: say which config mapping caused it.
        raise ConfigError(f"{node.where()}: building {label} failed: {err}") from err


def _infer_kind(type_name: str, registry: Any, node: ConfigNode) -> str:
    from pc3d.plugins import KINDS, UnknownComponentError, suggest

    found = registry.find(type_name)
    if len(found) == 1:
        return str(found[0].kind)
    if len(found) > 1:
        kinds = " and ".join(r.kind for r in found)
        raise ConfigError(
            f"{node.where(TYPE_KEY)}: '{type_name}' is registered as {kinds}; put it under a "
            f"key named after its kind ({', '.join(KINDS)})"
        )
    every = [r.name for r in registry.entries()]
    hint = suggest(type_name, every)
    raise UnknownComponentError(
        f"unknown component '{type_name}'" + (f"; did you mean '{hint}'?" if hint else "")
    )


def _build_value(node: ConfigNode, key: str, registry: Any) -> Any:
    value = node.value
    if isinstance(value, Mapping):
        if TYPE_KEY in value:
            return _build_component(node, _kind_for_key(key), registry)
        return {k: _build_value(node.child(k), str(k), registry) for k in value}
    if isinstance(value, list):
        return [_build_value(node.child(i), key, registry) for i in range(len(value))]
    return value


def _kind_for_key(key: str) -> str | None:
    from pc3d.plugins import KINDS

    if key in KINDS:
        return key
    if key.endswith("s") and key[:-1] in KINDS:
        return key[:-1]
    return None


def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function)
    except (NameError, TypeError, AttributeError):
        return {}  # annotations we cannot resolve are not checked


def _check_type(value: Any, hint: Any, node: ConfigNode, key: str) -> None:
    if hint is None or _matches(value, hint) is not False:
        return
    raise ConfigError(
        f"{node.where(key)}: expected {_hint_name(hint)}, got {_kind(value)} {value!r}"
    )


def _matches(value: Any, hint: Any) -> bool | None:
    """True/False where the hint is simple enough to check, None where it is not checked."""
    if hint is Any:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, arg) for arg in args]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        item_hints = [args[0]] if origin is not tuple or (len(args) == 2 and args[1] is ...) else []
        if origin is tuple and not item_hints:
            return None
        if not item_hints:
            return True
        results = [_matches(v, item_hints[0]) for v in value]
        return False if any(r is False for r in results) else True
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    if inspect.isclass(hint) and origin is None:
        try:
            return isinstance(value, hint)
        except TypeError:  # e.g. a Protocol that is not runtime-checkable
            return None
    return None


def _hint_name(hint: Any) -> str:
    if inspect.isclass(hint) and not typing.get_args(hint):
        return hint.__name__
    return re.sub(r"\b(typing|collections\.abc|builtins)\.", "", str(hint))


# -- writing -------------------------------------------------------------------------------------


def dump_config(
    config: Config, work_dir: str | os.PathLike[str], name: str = "config.yaml"
) -> Path:
    """Write the resolved config into ``work_dir`` (created if needed), atomically, and return
    the file. Loading that file gives the same data: it is self-contained (no ``_base_``)."""
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    header = ["# Resolved pc3d config (bases merged, overrides applied)."]
    if config.path is not None:
        header.append(f"# from: {config.path}")
    header.extend(f"# --set {item}" for item in config.overrides)
    text = "\n".join(header) + "\n" + config.to_yaml()
    # Write then rename, so a crash never leaves a half-written config behind.
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=folder, prefix=f".{name}.", suffix=".tmp", delete=False
    ) as handle:
        handle.write(text)
    os.replace(handle.name, target)
    return target


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes short lists of scalars inline (``[0.2, 0.2]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = len(data) <= 12 and all(
        isinstance(v, (int, float, str, bool)) or v is None for v in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_Dumper.add_representer(list, _represent_list)
