"""Voxel encoders and the pillar BEV scatter (PointPillars, SECOND; see `docs/nn3d.md`).

- `PillarFeatureNet` (hard pillars) and `DynamicPillarFeatureNet` (every point kept)
- `HardSimpleVFE` and `DynamicSimpleVFE`: mean of each voxel's points
- `PointPillarsScatter`: pillar features onto a `Tensor[B, C, ny, nx]` canvas
"""

from pc3d.nn.voxel.common import BN_EPS, BN_MOMENTUM, build_norm_3d, set_bn_hyperparameters
from pc3d.nn.voxel.pillar_encoders import DynamicPillarFeatureNet, PFNLayer, PillarFeatureNet
from pc3d.nn.voxel.simple import DynamicSimpleVFE, HardSimpleVFE, PointPillarsScatter

__all__ = [
    "BN_EPS",
    "BN_MOMENTUM",
    "DynamicPillarFeatureNet",
    "DynamicSimpleVFE",
    "HardSimpleVFE",
    "PFNLayer",
    "PillarFeatureNet",
    "PointPillarsScatter",
    "build_norm_3d",
    "set_bn_hyperparameters",
]
