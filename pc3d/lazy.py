"""Package attributes that load their module on first use (PEP 562), for `pc3d.io`,
`pc3d.io.kitti` and `pc3d.structures`.

A package lists `{module: (names, ...)}` and takes its `__getattr__` and `__dir__` from
`lazy_package`, so that `import pc3d.io` imports no submodule and light commands do not pull in
numpy or torch. (Each package also imports the same names under `TYPE_CHECKING`, for type
checkers: the table and those imports list the same names by design.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def module_of(table: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """`{name: module}` from a package's `{module: (names, ...)}` table."""
    return {name: module for module, names in table.items() for name in names}


def load_attribute(
    package: str, modules: Mapping[str, str], namespace: MutableMapping[str, Any], name: str
) -> Any:
    """Import the module that defines `name` and cache the value in the package's `namespace`.

    Args:
        package: the package's `__name__` (for the error message).
        modules: `{name: module}` (`module_of`).
        namespace: the package's `globals()`; the value is stored there, so the lookup runs once.
        name: the attribute asked for.

    Returns:
        The attribute's value.

    Raises:
        AttributeError: `name` is not one of the package's lazy attributes.
    """
    module = modules.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    namespace[name] = value
    return value


def lazy_package(
    package: str, table: Mapping[str, tuple[str, ...]], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a package whose names load their module on first use.

    Args:
        package: the package's `__name__`.
        table: `{module: (names, ...)}`.
        namespace: the package's `globals()`.

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's top level.
    """
    modules = module_of(table)

    def package_getattr(name: str) -> Any:
        return load_attribute(package, modules, namespace, name)

    def package_dir() -> list[str]:
        return sorted({*namespace, *modules})

    return package_getattr, package_dir
