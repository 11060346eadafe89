"""pc3d first-party plugin: 2D detection (RetinaNet, FCOS, Faster R-CNN on ``pc3d.nn``), COCO
datasets and COCO mAP (entry point ``det2d``). See ``docs/det2d.md``."""

from pc3d_det2d.data import (
    CocoDetection,
    DetNormalize,
    DetPad,
    DetRandomFlip,
    DetResize,
    collate_detection,
    load_coco_json,
)
from pc3d_det2d.faster_rcnn import FasterRCNN, RoIBoxHead, build_rpn_head
from pc3d_det2d.fcos import FCOS, FCOSHead
from pc3d_det2d.infer import detect_images, test_transforms
from pc3d_det2d.kitti import KittiImageDetection, kitti_to_coco
from pc3d_det2d.metric import CocoMetric
from pc3d_det2d.retinanet import RetinaHead, RetinaNet
from pc3d_det2d.shapes import make_shapes_coco
from pc3d_det2d.structures import Detections2D

__all__ = [
    "CocoDetection",
    "CocoMetric",
    "DetNormalize",
    "DetPad",
    "DetRandomFlip",
    "DetResize",
    "Detections2D",
    "FCOS",
    "FCOSHead",
    "FasterRCNN",
    "KittiImageDetection",
    "RoIBoxHead",
    "RetinaHead",
    "RetinaNet",
    "build_rpn_head",
    "collate_detection",
    "detect_images",
    "kitti_to_coco",
    "load_coco_json",
    "make_shapes_coco",
    "test_transforms",
]
