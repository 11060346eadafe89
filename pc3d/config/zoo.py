"""The first-party model zoo: the repository's top-level ``configs/`` folder, contributed to the
config search path through the same hook as a plugin's configs (``pc3d_config_dirs``), so every
first-party config is found by bare name (``pc3d train pointpillars_hv-secfpn_kitti-3d-3class``).

Where the folder is: in a source checkout (what ``make setup`` installs, editable) it sits next to
the ``pc3d`` package; a wheel (``pip install .``) carries it inside the package as ``pc3d/_zoo``
(see ``setup.py``). Layout, MMDetection3D-style: ``configs/_base_/{models,datasets,schedules}``
and ``configs/_base_/default_runtime.yaml``, then one folder per model family.
"""

from __future__ import annotations

from pathlib import Path

from pc3d.plugin_api import hookimpl

__all__ = ["PACKAGED_ZOO", "ZOO_DIR", "find_zoo_dir", "pc3d_config_dirs"]

#: Where a wheel puts the model zoo, relative to the ``pc3d`` package folder.
PACKAGED_ZOO = "_zoo"


def find_zoo_dir(package_dir: Path) -> Path:
    """The model zoo folder of the pc3d whose package folder is ``package_dir``.

    The copy inside an installed package comes first; otherwise the ``configs/`` folder of the
    checkout the package lies in (which may be missing: then no zoo configs are found).
    """
    packaged = package_dir / PACKAGED_ZOO
    if packaged.is_dir():
        return packaged
    return package_dir.parent / "configs"


#: The model zoo folder of this pc3d.
ZOO_DIR = find_zoo_dir(Path(__file__).resolve().parents[1])


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [ZOO_DIR] if ZOO_DIR.is_dir() else []
