"""pc3d first-party plugin: 2D detection components (entry point ``det2d``)."""

from pc3d_det2d.backbones import StridedConvNet
from pc3d_det2d.detectors import SingleStageDetector2D
from pc3d_det2d.heads import (
    Detections2D,
    FCOSOutput,
    FCOSTargets,
    SingleLevelFCOSHead,
    assign_fcos_targets,
    giou_loss_ltrb,
    sigmoid_focal_loss,
)

__all__ = [
    "Detections2D",
    "FCOSOutput",
    "FCOSTargets",
    "SingleLevelFCOSHead",
    "SingleStageDetector2D",
    "StridedConvNet",
    "assign_fcos_targets",
    "giou_loss_ltrb",
    "sigmoid_focal_loss",
]
