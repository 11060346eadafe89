"""pc3d first-party plugin: point-cloud segmentation components (entry point ``seg``)."""

from pc3d_seg.backbones import PointNetEncoder
from pc3d_seg.heads import PointMLPSegHead
from pc3d_seg.models import PointSegmentor

__all__ = ["PointMLPSegHead", "PointNetEncoder", "PointSegmentor"]
