"""Which files the pc3d distribution holds (everything else is in pyproject.toml).

The model zoo stays the top-level ``configs/`` folder of the repository; a wheel carries it as
``pc3d/_zoo/`` (one package per folder, so the ``_base_`` folders come along), where
`pc3d.config.zoo` finds it in an installed pc3d. An editable install reads ``configs/`` in place.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ZOO_SOURCE = "configs"
ZOO_PACKAGE = "pc3d._zoo"

zoo_packages = [ZOO_PACKAGE] + [
    ".".join((ZOO_PACKAGE, *folder.relative_to(ZOO_SOURCE).parts))
    for folder in sorted(Path(ZOO_SOURCE).rglob("*"))
    if folder.is_dir()
]

setup(
    packages=[*find_namespace_packages(include=["pc3d*"]), *zoo_packages],
    package_dir={ZOO_PACKAGE: ZOO_SOURCE},
    package_data={"pc3d": ["py.typed"], **{name: ["*.yaml"] for name in zoo_packages}},
)
