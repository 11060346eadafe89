"""Synthetic LiDAR scenes: street layouts, a spinning-LiDAR ray caster, KITTI-layout writer.

- :mod:`pc3d.data.synthetic.scene`: object and distractor layouts (:func:`sample_layout`).
- :mod:`pc3d.data.synthetic.sensor`: the simulated sensor (:func:`cast_rays`).
- :mod:`pc3d.data.synthetic.kitti`: frames and data sets in the KITTI layout
  (:func:`generate_frame`, :func:`write_synthetic_kitti`).
"""

from pc3d.data.synthetic.kitti import (
    SYNTHETIC_CALIB_TEXT,
    SyntheticFrame,
    generate_frame,
    write_synthetic_kitti,
)
from pc3d.data.synthetic.scene import SEMANTIC_CLASSES, SceneLayout, SceneSettings, sample_layout
from pc3d.data.synthetic.sensor import LidarSensor, Sweep, cast_rays

__all__ = [
    "SEMANTIC_CLASSES",
    "SYNTHETIC_CALIB_TEXT",
    "LidarSensor",
    "SceneLayout",
    "SceneSettings",
    "Sweep",
    "SyntheticFrame",
    "cast_rays",
    "generate_frame",
    "sample_layout",
    "write_synthetic_kitti",
]
