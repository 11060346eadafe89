"""Hook implementations of the det3d plugin (entry point ``det3d`` in group ``pc3d``)."""

from __future__ import annotations

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_det3d.anchor_head import Anchor3DHead
from pc3d_det3d.backbones import BEVBackbone
from pc3d_det3d.center_head import CenterPointHead
from pc3d_det3d.datasets import CustomLidarDataset, KittiDataset
from pc3d_det3d.detectors import BEVDetector
from pc3d_det3d.heads import CenterHead
from pc3d_det3d.voxel_encoders import DynamicPillarEncoder
from pc3d_det3d.voxelnet import VoxelDetector


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_voxel_encoder(DynamicPillarEncoder)
    registry.add_backbone(BEVBackbone)
    registry.add_head(CenterHead)
    registry.add_head(Anchor3DHead)
    registry.add_head(CenterPointHead)
    registry.add_model(BEVDetector)
    # PointPillars and SECOND; MMDetection3D calls the same model VoxelNet.
    registry.add_model(VoxelDetector)
    registry.add_model(VoxelDetector, name="VoxelNet")
    # CenterPoint is the same detector with a CenterPointHead (MMDetection3D's name for it).
    registry.add_model(VoxelDetector, name="CenterPoint")
    registry.add_dataset(KittiDataset)
    registry.add_dataset(CustomLidarDataset)
