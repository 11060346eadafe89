"""pc3d first-party plugin: 3D detection components.

Registered through the entry point ``det3d`` (see :mod:`pc3d_det3d.plugin`), exactly like a
third-party plugin.

``gaussian_focal_loss`` is :func:`pc3d.nn.losses.gaussian_focal_loss`, re-exported here for code
that imported it from this package.
"""

from pc3d.nn.losses import gaussian_focal_loss
from pc3d_det3d.backbones import BEVBackbone
from pc3d_det3d.datasets import KITTI_CLASSES, KittiDataset
from pc3d_det3d.detectors import BEVDetector
from pc3d_det3d.heads import (
    REGRESSION_CHANNELS,
    CenterHead,
    CenterHeadBase,
    CenterHeadOutput,
    CenterTargets,
    decode_center_output,
    encode_center_targets,
)
from pc3d_det3d.structures import BEVGrid, Detections3D
from pc3d_det3d.voxel_encoders import DynamicPillarEncoder

__all__ = [
    "KITTI_CLASSES",
    "REGRESSION_CHANNELS",
    "BEVBackbone",
    "BEVDetector",
    "BEVGrid",
    "CenterHead",
    "CenterHeadBase",
    "CenterHeadOutput",
    "CenterTargets",
    "Detections3D",
    "DynamicPillarEncoder",
    "KittiDataset",
    "decode_center_output",
    "encode_center_targets",
    "gaussian_focal_loss",
]
