"""pc3d's shared 2D CNN / detection core (see `docs/nn.md`).

- backbones: `MLP`, `LeNet5`, `AlexNet`, `VGG`, `GoogLeNet`, `ResNet` (multi-scale outputs,
  frozen stages, norm choice; `out_channels` / `out_strides` describe the outputs)
- necks: `FPN` (with extra levels, RetinaNet P6/P7)
- anchors and boxes: `AnchorGenerator`, `AnchorGenerator3D` (both `AnchorGeneratorLike`),
  `DeltaXYWHBBoxCoder`, `bbox_overlaps`, `box_iou`,
  `generalized_box_iou`
- assignment: `MaxIoUAssigner`, `RandomSampler`, `PseudoSampler`
- losses: `sigmoid_focal_loss`/`FocalLoss`, `gaussian_focal_loss`/`GaussianFocalLoss` (CenterNet
  heatmaps), `cross_entropy`/`CrossEntropyLoss`, `smooth_l1_loss`/`SmoothL1Loss`, `l1_loss`/`L1Loss`,
  `giou_loss`/`GIoULoss`
- RoI feature extraction: `roi_align`/`RoIAlign`, `roi_pool`/`RoIPool`
- `RPNHead` (region proposals)
- 3D blocks (`docs/nn3d.md`): voxel encoders `PillarFeatureNet`, `DynamicPillarFeatureNet`,
  `HardSimpleVFE`, `DynamicSimpleVFE`; `PointPillarsScatter`; `SparseEncoder` (spconv 2, imported
  only when built); `SECONDBackbone`; `SECONDFPN`; MMDetection3D checkpoints
  (`load_mmdet3d_checkpoint`, `convert_mmdet3d_state_dict`, `MMDET3D_KEY_TABLE`)

Boxes are `x1, y1, x2, y2` pixels everywhere. Everything is plain torch (no compiled
extensions) and gives the same results on CPU and CUDA.
"""

from pc3d.nn.anchors import AnchorGenerator, AnchorGeneratorLike
from pc3d.nn.anchors_3d import AnchorGenerator3D
from pc3d.nn.assigners import AssignResult, MaxIoUAssigner, PseudoSampler, RandomSampler, SamplingResult
from pc3d.nn.backbones import MLP, VGG, AlexNet, Backbone, BasicBlock, Bottleneck, GoogLeNet, LeNet5, ResNet
from pc3d.nn.bev_backbones import SECONDBackbone
from pc3d.nn.box_coders import DeltaXYWHBBoxCoder, clip_boxes
from pc3d.nn.checkpoint_mmdet3d import (
    MMDET3D_KEY_TABLE,
    convert_mmdet3d_state_dict,
    is_mmdet3d_checkpoint,
    load_mmdet3d_checkpoint,
    read_mmdet3d_checkpoint,
)
from pc3d.nn.layers import ConvNormAct, FrozenBatchNorm2d, build_norm
from pc3d.nn.losses import (
    CrossEntropyLoss,
    FocalLoss,
    GaussianFocalLoss,
    GIoULoss,
    L1Loss,
    SmoothL1Loss,
    binary_cross_entropy,
    cross_entropy,
    gaussian_focal_loss,
    giou_loss,
    l1_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
    weight_reduce_loss,
)
from pc3d.nn.necks import FPN, SECONDFPN
from pc3d.nn.roi import RoIAlign, RoIPool, roi_align, roi_pool
from pc3d.nn.rpn import RPNHead
from pc3d.nn.sparse import SparseEncoder
from pc3d.nn.voxel import (
    DynamicPillarFeatureNet,
    DynamicSimpleVFE,
    HardSimpleVFE,
    PFNLayer,
    PillarFeatureNet,
    PointPillarsScatter,
)
from pc3d.ops.iou_2d import bbox_overlaps, box_area, box_iou, generalized_box_iou

__all__ = [
    "FPN",
    "MLP",
    "MMDET3D_KEY_TABLE",
    "SECONDFPN",
    "VGG",
    "AlexNet",
    "AnchorGenerator",
    "AnchorGenerator3D",
    "AnchorGeneratorLike",
    "AssignResult",
    "Backbone",
    "BasicBlock",
    "Bottleneck",
    "ConvNormAct",
    "CrossEntropyLoss",
    "DeltaXYWHBBoxCoder",
    "DynamicPillarFeatureNet",
    "DynamicSimpleVFE",
    "FocalLoss",
    "FrozenBatchNorm2d",
    "GaussianFocalLoss",
    "GIoULoss",
    "GoogLeNet",
    "HardSimpleVFE",
    "L1Loss",
    "LeNet5",
    "MaxIoUAssigner",
    "PFNLayer",
    "PillarFeatureNet",
    "PointPillarsScatter",
    "PseudoSampler",
    "RPNHead",
    "RandomSampler",
    "ResNet",
    "RoIAlign",
    "RoIPool",
    "SECONDBackbone",
    "SamplingResult",
    "SmoothL1Loss",
    "SparseEncoder",
    "bbox_overlaps",
    "binary_cross_entropy",
    "box_area",
    "box_iou",
    "build_norm",
    "clip_boxes",
    "convert_mmdet3d_state_dict",
    "cross_entropy",
    "gaussian_focal_loss",
    "generalized_box_iou",
    "giou_loss",
    "is_mmdet3d_checkpoint",
    "l1_loss",
    "load_mmdet3d_checkpoint",
    "read_mmdet3d_checkpoint",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "weight_reduce_loss",
]
