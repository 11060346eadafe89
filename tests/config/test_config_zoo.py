"""The model zoo is found by bare name both in a source checkout (top-level ``configs/``) and in
a pc3d installed from a wheel (``pc3d/_zoo`` inside the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import pc3d
from pc3d.config import find_config, load_config
from pc3d.config.zoo import PACKAGED_ZOO, ZOO_DIR, find_zoo_dir

REPO = Path(__file__).resolve().parents[2]
NAME = "pointpillars_hv-secfpn_kitti-3d-3class"


def _copy_zoo(destination: Path) -> Path:
    shutil.copytree(REPO / "configs", destination)
    return destination


def test_a_checkout_uses_its_top_level_configs_folder():
    assert ZOO_DIR == REPO / "configs"
    assert find_config(NAME).is_relative_to(ZOO_DIR)


def test_an_installed_package_uses_the_zoo_inside_it(tmp_path):
    site = tmp_path / "site-packages"
    package = site / "pc3d"
    zoo = _copy_zoo(package / PACKAGED_ZOO)
    (site / "configs").mkdir()  # someone else's top-level folder next to the package is not it
    assert find_zoo_dir(package) == zoo
    found = find_config(NAME, search_dirs=[zoo])
    assert found == zoo / "pointpillars" / f"{NAME}.yaml"
    config = load_config(NAME, search_dirs=[zoo])  # _base_ files resolve inside the copy
    assert config["model"]["type"]


def test_a_checkout_without_a_packaged_zoo_uses_configs_next_to_the_package(tmp_path):
    (tmp_path / "pc3d").mkdir()
    assert find_zoo_dir(tmp_path / "pc3d") == tmp_path / "configs"


@pytest.mark.slow
def test_the_wheel_carries_the_zoo_and_finds_configs_by_bare_name(tmp_path):
    pytest.importorskip("setuptools", minversion="77")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "pc3d", source / "pc3d", ignore=shutil.ignore_patterns("__pycache__"))
    _copy_zoo(source / "configs")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("pc3d-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    shipped = {
        f"pc3d/{PACKAGED_ZOO}/{p.relative_to(REPO / 'configs').as_posix()}"
        for p in (REPO / "configs").rglob("*.yaml")
    }
    assert shipped and shipped <= names
    assert not any(n.startswith("configs/") for n in names)

    # The unpacked wheel, not this checkout, is the pc3d that runs.
    probe = (
        "import pc3d, pc3d.config as c, pc3d.config.zoo as z;"
        f"print(pc3d.__file__); print(z.ZOO_DIR); print(c.find_config({NAME!r}));"
        f"print(c.load_config({NAME!r})['model']['type'])"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "PC3D_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    package_file, zoo, found, model_type = result.stdout.split("\n")[:4]
    site_package = tmp_path / "site" / "pc3d"
    assert Path(package_file).parent == site_package != Path(pc3d.__file__).parent
    assert Path(zoo) == site_package / PACKAGED_ZOO
    assert Path(found) == site_package / PACKAGED_ZOO / "pointpillars" / f"{NAME}.yaml"
    assert model_type
