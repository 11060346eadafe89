"""Loading config files: YAML data only, ``_base_`` inheritance, finding configs by name.

A config is YAML *data*, read with ``yaml.safe_load``; nothing in it is ever executed.
``_base_: a.yaml`` or ``_base_: [a.yaml, b.yaml]`` (top level only): the bases are merged in
order, then the file itself on top. A base path is relative to the including file; if it is not
there it is looked up in the config folders plugins contribute.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from pc3d.config.keys import BASE_KEY, REPLACE_KEY, ConfigError, KeyPath, dotted
from pc3d.config.merging import merge_tracked
from pc3d.config.node import Config
from pc3d.config.overrides import apply_overrides
from pc3d.config.type_checks import describe_value
from pc3d.config.yaml_text import ConfigLoader, yaml_error_line
from pc3d.errors import did_you_mean

__all__ = ["CONFIG_SUFFIXES", "find_config", "list_configs", "load_config", "search_dirs"]

CONFIG_SUFFIXES = (".yaml", ".yml")

Sources = dict[KeyPath, str]


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    *,
    search_dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> Config:
    """Load a YAML config with its ``_base_`` chain, apply overrides, resolve references.

    Args:
        path: A file, or a bare config name found in ``search_dirs``.
        overrides: ``dotted.key=yaml_value`` items, applied in order after merging.
        search_dirs: Where bases and bare names are looked up after the including file's folder;
            ``None`` uses the folders contributed by plugins.

    Returns:
        The resolved config.

    Raises:
        ConfigError: Missing file, invalid YAML (with line), base cycle, bad override, missing or
            circular reference.
    """
    dirs = _search_dirs(search_dirs)
    file = find_config(path, dirs)
    data, sources = _load_file(file, (), dirs)
    return apply_overrides(Config(data, sources, file), overrides)


def find_config(
    name: str | os.PathLike[str], search_dirs: Sequence[str | os.PathLike[str]] | None = None
) -> Path:
    """Resolve a config path: an existing file as given, else ``name`` in ``search_dirs``.

    Args:
        name: A path, or a bare name with or without ``.yaml``.
        search_dirs: Folders to look in; ``None``: the plugins' config folders.

    Returns:
        The config file.

    Raises:
        ConfigError: Not found (with a "did you mean" among the configs there are).
    """
    path = Path(name)
    # A bare name may leave out the suffix: `pc3d config show pillar-center-tiny_kitti-3class`.
    names = [path]
    if not path.suffix:
        names += [path.with_name(path.name + suffix) for suffix in CONFIG_SUFFIXES]
    for candidate in names:
        if candidate.is_file():
            return candidate
    dirs = _search_dirs(search_dirs)
    if not path.is_absolute():
        found = _in_folders(path, names, dirs)
        if found is not None:
            return found
    message = f"config {str(name)!r} not found{did_you_mean(path.name, [p.name for p in list_configs(dirs)])}"
    if dirs and not path.is_absolute():
        message += f"; also looked in {', '.join(str(d) for d in dirs)}"
    raise ConfigError(message)


def list_configs(search_dirs: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` file in the config folders (recursively), sorted per folder.

    Args:
        search_dirs: The folders; ``None``: the plugins' config folders.
    """
    found: list[Path] = []
    for folder in _search_dirs(search_dirs):
        found.extend(sorted(p for p in folder.rglob("*") if p.suffix in CONFIG_SUFFIXES and p.is_file()))
    return found


def search_dirs() -> list[Path]:
    """The config folders the loaded plugins contribute, in plugin order."""
    from pc3d.plugin_manager import config_dirs  # late: loading plugins imports their packages

    return config_dirs()


def _search_dirs(dirs: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    return search_dirs() if dirs is None else [Path(d) for d in dirs]


def _load_file(file: Path, stack: tuple[Path, ...], dirs: Sequence[Path]) -> tuple[dict[str, Any], Sources]:
    """The merged data of ``file`` and its bases, and where each key came from."""
    resolved = file.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack[stack.index(resolved) :], resolved))
        raise ConfigError(f"{file}: _base_ cycle: {chain}")
    data, sources = _read_yaml(file)
    base_value = data.pop(BASE_KEY, [])
    bases = [base_value] if isinstance(base_value, str) else base_value
    base_origin = sources.get((BASE_KEY,), str(file))
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{base_origin}: {BASE_KEY} must be a file name or a list of them")
    merged: dict[str, Any] = {}
    merged_sources: Sources = {}
    for base in bases:
        base_file = _resolve_base(base, file, dirs, base_origin)
        base_data, base_sources = _load_file(base_file, (*stack, resolved), dirs)
        merged = merge_tracked(merged, base_data, (), merged_sources, base_sources)
    own = {p: s for p, s in sources.items() if p[:1] != (BASE_KEY,) and REPLACE_KEY not in p}
    return merge_tracked(merged, data, (), merged_sources, own), merged_sources


def _read_yaml(file: Path) -> tuple[dict[str, Any], Sources]:
    """One file's mapping (``_base_`` still in it) and the ``file:line`` of each key."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: cannot read config: {err}") from err
    try:
        data, lines = _parse(text, file)
    except yaml.YAMLError as err:
        raise ConfigError(yaml_error_line(err, str(file))) from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a config must be a mapping at top level, got {describe_value(data)}")
    sources = {path: f"{file}:{line}" for path, line in lines.items()}
    _check_reserved(data, (), sources, file)
    return data, sources


def _parse(text: str, file: Path) -> tuple[Any, dict[KeyPath, int]]:
    """The data of one YAML document and the line of each key, from a single parse."""
    # libyaml's parser when PyYAML has it; the safe constructor either way (tags stay data), and
    # YAML 1.2's floats (1e-3): pc3d.config.yaml_text.
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, _key_lines(node, file)


_Loader: Any = ConfigLoader


def _in_folders(path: Path, names: Sequence[Path], dirs: Sequence[Path]) -> Path | None:
    """``names`` (spellings of ``path``) in the first folder holding one; a bare file name is
    also found in the folders' subfolders (``configs/pointpillars/...``)."""
    for folder in dirs:
        for candidate in names:
            if (folder / candidate).is_file():
                return folder / candidate
    if len(path.parts) == 1:
        for folder in dirs:
            for candidate in names:
                nested = sorted(p for p in folder.rglob(candidate.name) if p.is_file())
                if nested:
                    return nested[0]
    return None


def _resolve_base(base: str, including: Path, dirs: Sequence[Path], origin: str) -> Path:
    candidate = including.parent / base
    if candidate.is_file():
        return candidate
    if not Path(base).is_absolute():
        found = _in_folders(Path(base), [Path(base)], dirs)
        if found is not None:
            return found
    looked = [str(including.parent)] + [str(d) for d in dirs]
    raise ConfigError(f"{origin}: _base_ {base!r} not found (looked in {', '.join(looked)})")


def _key_lines(node: yaml.Node | None, file: Path, prefix: KeyPath = ()) -> dict[KeyPath, int]:
    """Key path -> 1-based line of the key, from the composed YAML node tree.

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
                    f"{file}:{line}: duplicate key '{dotted(path)}' (first on line {lines[path]})"
                )
            lines[path] = line
            lines.update(_key_lines(value_node, file, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = prefix + (str(index),)
            lines[path] = item.start_mark.line + 1
            lines.update(_key_lines(item, file, path))
    return lines


def _check_reserved(value: Any, path: KeyPath, sources: Sources, file: Path) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            here = path + (str(key),)
            where = f"{dotted(here)} (from {sources.get(here, str(file))})"
            if key == BASE_KEY and path:
                raise ConfigError(f"{where}: {BASE_KEY} is only allowed at top level")
            if key == REPLACE_KEY and not isinstance(item, bool):
                raise ConfigError(f"{where}: {REPLACE_KEY} must be true or false, got {item!r}")
            _check_reserved(item, here, sources, file)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_reserved(item, path + (str(index),), sources, file)
