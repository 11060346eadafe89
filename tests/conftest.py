"""Fixtures shared by the core test folders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pc3d.plugin_manager import reset_plugin_manager


@pytest.fixture()
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin manager loaded from this test's environment (none of the plugin variables set),
    not from another test's; reset again afterwards."""
    for var in ("PC3D_DISABLE_PLUGIN_AUTOLOAD", "PC3D_PLUGINS", "PC3D_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()
