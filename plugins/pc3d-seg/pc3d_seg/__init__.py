"""pc3d first-party plugin: semantic segmentation of point clouds and images (entry point ``seg``).

- models: :class:`PointSegmentor` (per-point backbone + :class:`PointMLPSegHead`; backbones
  ``SparseUNet`` and ``PointNet2`` from ``pc3d.nn``, or :class:`PointNetEncoder`) and
  :class:`ImageSegmentor` (a ``pc3d.nn`` image backbone + :class:`FCNHead`);
- data: :class:`SyntheticLidarSeg`, :class:`SemanticKittiSeg`, :class:`IndoorSeg` (S3DIS,
  ScanNet), :class:`ShapesSeg` (2D masks), augmentations in :mod:`pc3d_seg.transforms`;
- inference outputs: :func:`write_segmentation` (labels as ``.npy``/``.label``, PNG render).
"""

from pc3d_seg.backbones import PointNetEncoder
from pc3d_seg.datasets import IndoorSeg, SemanticKittiSeg, SyntheticLidarSeg, collate_clouds
from pc3d_seg.heads import FCNHead, PointMLPSegHead
from pc3d_seg.infer import (
    infer_segmentation,
    read_point_labels,
    render_segmentation,
    write_point_labels,
    write_segmentation,
)
from pc3d_seg.losses import lovasz_softmax, seg_loss
from pc3d_seg.models import ImageSegmentor, PointSegmentor
from pc3d_seg.shapes import SHAPE_CLASSES, ShapesSeg

__all__ = [
    "SHAPE_CLASSES",
    "FCNHead",
    "ImageSegmentor",
    "IndoorSeg",
    "PointMLPSegHead",
    "PointNetEncoder",
    "PointSegmentor",
    "SemanticKittiSeg",
    "ShapesSeg",
    "SyntheticLidarSeg",
    "collate_clouds",
    "infer_segmentation",
    "lovasz_softmax",
    "read_point_labels",
    "render_segmentation",
    "seg_loss",
    "write_point_labels",
    "write_segmentation",
]
