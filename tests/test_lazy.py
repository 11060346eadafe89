"""`pc3d.lazy`: the first-use attribute loading of `pc3d.io` and `pc3d.structures`."""

from __future__ import annotations

import types

import pytest

import pc3d.io
import pc3d.io.kitti
import pc3d.structures
from pc3d.lazy import load_attribute, module_of


def test_module_of_inverts_the_table() -> None:
    assert module_of({"json": ("dumps", "loads"), "math": ("pi",)}) == {
        "dumps": "json",
        "loads": "json",
        "pi": "math",
    }


def test_load_attribute_imports_and_caches() -> None:
    namespace: dict[str, object] = {}
    value = load_attribute("pkg", {"pi": "math"}, namespace, "pi")
    assert value == pytest.approx(3.14159265) and namespace == {"pi": value}


@pytest.mark.parametrize("package", [pc3d.io, pc3d.structures])
def test_unknown_attribute_names_the_package(package: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match=rf"module '{package.__name__}' has no attribute 'nope'"):
        package.nope  # noqa: B018


def test_packages_list_their_lazy_names() -> None:
    assert "read_point_file" in dir(pc3d.io) and "LiDARBoxes3D" in dir(pc3d.structures)


@pytest.mark.parametrize("package", [pc3d.io, pc3d.io.kitti, pc3d.structures])
def test_no_lazy_name_is_also_a_submodule(package: types.ModuleType) -> None:
    # Importing a submodule sets the package attribute of its name to the module, which would
    # then shadow a lazy attribute of the same name (`from pc3d.io import x` giving a module).
    import pkgutil

    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    lazy = {name for names in package._LAZY.values() for name in names}
    assert submodules and lazy and submodules.isdisjoint(lazy), submodules & lazy


@pytest.mark.parametrize("package", [pc3d.io.kitti, pc3d.structures])
def test_written_out_all_lists_exactly_the_lazy_names(package: types.ModuleType) -> None:
    lazy = [name for names in package._LAZY.values() for name in names]
    assert sorted(package.__all__) == sorted(lazy)
