"""The first-party model zoo: the repository's top-level ``configs/`` folder, contributed to the
config search path through the same hook as a plugin's configs (``pc3d_config_dirs``), so every
first-party config is found by bare name (``pc3d train pointpillars_hv-secfpn_kitti-3d-3class``).

The folder sits next to the ``pc3d`` package in a source checkout, which is what ``make setup``
installs (editable). Layout, MMDetection3D-style: ``configs/_base_/{models,datasets,schedules}``
and ``configs/_base_/default_runtime.yaml``, then one folder per model family.
"""

from __future__ import annotations

from pathlib import Path

from pc3d.plugin_api import hookimpl

#: The model zoo folder of this checkout.
ZOO_DIR = Path(__file__).resolve().parents[2] / "configs"


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [ZOO_DIR] if ZOO_DIR.is_dir() else []
