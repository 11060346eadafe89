"""Registers the core's building blocks (hook ``pc3d_register``) as a core plugin.

Backbones, necks, voxel encoders and middle encoders live in ``pc3d.nn``, which every model family
uses; registering them in the core (``pc3d.plugin_manager.CORE_PLUGINS``) lets configs of any
plugin name them (``type: ResNet``, ``type: PillarFeatureNet``) without depending on another
plugin being installed or selected.
"""

from __future__ import annotations

from pc3d.nn import (
    FPN,
    MLP,
    VGG,
    AlexNet,
    GoogLeNet,
    HardSimpleVFE,
    LeNet5,
    PillarFeatureNet,
    PointPillarsScatter,
    ResNet,
    SECONDBackbone,
    SparseEncoder,
)
from pc3d.nn.necks.second_fpn import SECONDFPN
from pc3d.nn.pointnet2 import PointNet2
from pc3d.nn.sparse_unet import SparseUNet
from pc3d.nn.voxel import DynamicPillarFeatureNet, DynamicSimpleVFE
from pc3d.plugin_api import Registrar, hookimpl

BACKBONES = (MLP, LeNet5, AlexNet, VGG, GoogLeNet, ResNet, SECONDBackbone, SparseUNet, PointNet2)
NECKS = (FPN, SECONDFPN)
VOXEL_ENCODERS = (PillarFeatureNet, DynamicPillarFeatureNet, HardSimpleVFE, DynamicSimpleVFE)
MIDDLE_ENCODERS = (PointPillarsScatter, SparseEncoder)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    for backbone in BACKBONES:
        registry.add_backbone(backbone)
    for neck in NECKS:
        registry.add_neck(neck)
    for voxel_encoder in VOXEL_ENCODERS:
        registry.add_voxel_encoder(voxel_encoder)
    for middle_encoder in MIDDLE_ENCODERS:
        registry.add_middle_encoder(middle_encoder)
