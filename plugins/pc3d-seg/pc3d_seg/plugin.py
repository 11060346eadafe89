"""Hook implementations of the seg plugin (entry point ``seg``).

The seg configs live in the repository's model zoo, ``configs/seg/`` (found by bare name through
the core's ``pc3d.config.zoo``), so this plugin contributes no config folder of its own.
"""

from __future__ import annotations

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_seg.backbones import PointNetEncoder
from pc3d_seg.datasets import IndoorSeg, SemanticKittiSeg, SyntheticLidarSeg
from pc3d_seg.heads import FCNHead, PointMLPSegHead
from pc3d_seg.models import ImageSegmentor, PointSegmentor
from pc3d_seg.shapes import ShapesSeg
from pc3d_seg.transforms import TRANSFORMS


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    # The sparse U-Net and PointNet++ backbones are core blocks, registered by pc3d.nn.plugin.
    registry.add_backbone(PointNetEncoder)
    registry.add_head(PointMLPSegHead)
    registry.add_head(FCNHead)
    registry.add_model(PointSegmentor)
    registry.add_model(ImageSegmentor)
    for dataset in (SyntheticLidarSeg, SemanticKittiSeg, IndoorSeg, ShapesSeg):
        registry.add_dataset(dataset)
    for transform in TRANSFORMS:
        registry.add_transform(transform)
