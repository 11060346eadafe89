"""Registers pc3d's evaluation metrics with the plugin registry (hook ``pc3d_register``).

The metrics live in pc3d's core, so this module is meant to be loaded as a core plugin
(``pc3d.plugin_manager.CORE_PLUGINS``) or called from a first-party plugin's ``pc3d_register``; either
way they go through the same hook as any third-party metric. Configs then name them::

    metrics:
      - type: KittiMetric
        classes: [Car, Pedestrian, Cyclist]
      - type: Map3DMetric
        iou_thresholds: [0.25, 0.5]
      - type: SegMIoUMetric
        num_classes: 20
        ignore_index: -1
"""

from __future__ import annotations

from pc3d.evaluation.kitti import KittiMetric
from pc3d.evaluation.map3d import Map3DMetric
from pc3d.evaluation.seg import SegMIoUMetric
from pc3d.plugin_api import Registrar, hookimpl

METRICS = (KittiMetric, Map3DMetric, SegMIoUMetric)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    for metric in METRICS:
        registry.add_metric(metric)
