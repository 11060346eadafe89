"""Fixtures shared by the core test folders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def renderer() -> None:
    """Skip (saying why) when no OpenGL context can be had at all; otherwise nothing."""
    import pc3d.vis
    from pc3d.errors import MissingDependencyError

    try:
        pc3d.vis.render(np.zeros((1, 3)), size=(32, 32), legend=False)
    except (pc3d.vis.DisplayUnavailableError, MissingDependencyError) as err:
        # `make test` (and so CI) installs everything rendering needs: there it must not skip.
        if os.environ.get("PC3D_REQUIRE_RENDER") == "1":
            pytest.fail(f"rendering is required (PC3D_REQUIRE_RENDER=1) but failed: {err}")
        pytest.skip(f"cannot render here: {err}")


@pytest.fixture()
def cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[list[str]], str]:
    """``run(argv)``: runs ``pc3d ARGV`` from ``tmp_path`` (relative paths land there), checks that it
    exits with status 2 and a ``pc3d COMMAND: error:`` message, and returns that message (stderr)."""
    from pc3d.cli import main

    monkeypatch.chdir(tmp_path)

    def run(argv: list[str]) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"pc3d {argv[0]}: error:"), err
        return err

    return run
