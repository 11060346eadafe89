"""Fixtures for plugin tests: fake plugin distributions made on the fly, found through their
``*.dist-info/entry_points.txt`` exactly like installed ones (offline, nothing installed)."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

_counter = itertools.count()

MakeDist = Callable[..., str]


@pytest.fixture(autouse=True)
def _fresh_plugin_manager(fresh_plugins: None) -> None:
    """Each test starts from the environment it sets, not from another test's loaded plugins."""


@pytest.fixture()
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """``make_dist(dist, source, entry_point=None, version="1.2.3", commands=None) -> module name``.

    Writes ``source`` as a module with a unique name and a ``dist-info`` declaring it as the
    ``pc3d`` entry point ``entry_point`` (default: the distribution name), on ``sys.path``;
    ``commands`` maps command names to functions of the module (group ``pc3d.commands``).
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(
        dist: str,
        source: str,
        entry_point: str | None = None,
        version: str = "1.2.3",
        commands: dict[str, str] | None = None,
    ) -> str:
        module = f"fake_pc3d_plugin_{next(_counter)}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[pc3d]", f"{entry_point or dist} = {module}"]
        if commands:
            lines += ["[pc3d.commands]", *(f"{name} = {module}:{func}" for name, func in commands.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return module

    return make


@pytest.fixture()
def good_plugin() -> str:
    """Source of a working plugin registering ``TinyHead`` and ``TinyModel``."""
    return GOOD_PLUGIN


GOOD_PLUGIN = """
    from pathlib import Path
    from pc3d.plugin_api import hookimpl

    class TinyHead:
        def __init__(self, num_classes: int, width: int = 4) -> None:
            self.num_classes = num_classes
            self.width = width

    class TinyModel:
        def __init__(self, head: TinyHead) -> None:
            self.head = head

    @hookimpl
    def pc3d_register(registry):
        registry.add_head(TinyHead)
        registry.add_model(TinyModel)

    @hookimpl
    def pc3d_config_dirs():
        return [Path(__file__).parent]
"""
