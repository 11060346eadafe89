"""Registers the core's data transforms (hook ``pc3d_register``) as a core plugin, so every
3D data set's ``pipeline`` can name them (``type: GlobalRotScaleTrans``)."""

from __future__ import annotations

from pc3d.data import transforms
from pc3d.data.gt_database import ObjectSample
from pc3d.plugin_api import Registrar, hookimpl

TRANSFORMS = (
    transforms.PointsRangeFilter,
    transforms.ObjectRangeFilter,
    transforms.GlobalRotScaleTrans,
    transforms.RandomFlip3D,
    transforms.PointShuffle,
    transforms.ObjectNoise,
    ObjectSample,
)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    for transform in TRANSFORMS:
        registry.add_transform(transform)
