"""Hook implementations of the det2d plugin (entry point ``det2d``).

Backbones (``ResNet`` ...) and the ``FPN`` neck are registered by pc3d's core
(``pc3d.nn.plugin``); this plugin registers the detection heads and models, the COCO dataset,
its transforms and the COCO metric. Its ``pc3d det2d`` command is not a hook: it is an entry point
of the group ``pc3d.commands`` (``pyproject.toml``).
"""

from __future__ import annotations

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_det2d.data import CocoDetection, DetNormalize, DetPad, DetRandomFlip, DetResize
from pc3d_det2d.faster_rcnn import FasterRCNN, RoIBoxHead, build_rpn_head
from pc3d_det2d.fcos import FCOS, FCOSHead
from pc3d_det2d.kitti import KittiImageDetection
from pc3d_det2d.metric import CocoMetric
from pc3d_det2d.retinanet import RetinaHead, RetinaNet


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_head(RetinaHead)
    registry.add_model(RetinaNet)
    registry.add_head(FCOSHead)
    registry.add_model(FCOS)
    registry.add_head(build_rpn_head, name="RPNHead")
    registry.add_head(RoIBoxHead)
    registry.add_model(FasterRCNN)
    registry.add_dataset(CocoDetection)
    registry.add_dataset(KittiImageDetection)
    for transform in (DetResize, DetRandomFlip, DetNormalize, DetPad):
        registry.add_transform(transform)
    registry.add_metric(CocoMetric)
