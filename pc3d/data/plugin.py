"""Registers the core's data transforms (hook ``pc3d_register``) as a core plugin, so every
3D data set's ``pipeline`` can name them (``type: GlobalRotScaleTrans``)."""

from __future__ import annotations

from pc3d.data.gt_database import ObjectSample
from pc3d.data.transforms import (
    GlobalRotScaleTrans,
    ObjectNoise,
    ObjectRangeFilter,
    PointShuffle,
    PointsRangeFilter,
    RandomFlip3D,
)
from pc3d.plugin_api import Registrar, hookimpl

TRANSFORMS = (
    PointsRangeFilter,
    ObjectRangeFilter,
    GlobalRotScaleTrans,
    RandomFlip3D,
    PointShuffle,
    ObjectNoise,
    ObjectSample,
)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    for transform in TRANSFORMS:
        registry.add_transform(transform)
