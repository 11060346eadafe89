"""The evaluation metrics register through the plugin hook and build from config mappings."""

from __future__ import annotations

import pytest
import torch

from pc3d.config import ConfigError, build
from pc3d.evaluation import KittiMetric, Map3DMetric, SegMIoUMetric
from pc3d.evaluation import plugin as evaluation_plugin
from pc3d.plugin_manager import PluginManager


@pytest.fixture
def registry():
    # The metrics are a core plugin: loaded even with autoload off, through the same hook.
    manager = PluginManager(autoload=False).load()
    info = next(p for p in manager.loaded if p.source == evaluation_plugin.__name__)
    assert info.distribution == "pc3d"
    assert info.registered == {"metric": ["KittiMetric", "Map3DMetric", "SegMIoUMetric"]}
    return manager.registry


def test_metrics_build_from_config(registry) -> None:
    kitti = build({"type": "KittiMetric", "classes": ["Car", "Cyclist"]}, "metric", registry=registry)
    assert isinstance(kitti, KittiMetric) and kitti.classes == ["Car", "Cyclist"]
    map3d = build(
        {"type": "Map3DMetric", "iou_thresholds": [0.25, 0.5], "class_names": ["chair", "table"]},
        "metric",
        registry=registry,
    )
    assert isinstance(map3d, Map3DMetric) and map3d.iou_thresholds == (0.25, 0.5)
    seg = build({"type": "SegMIoUMetric", "num_classes": 3, "ignore_index": -1}, "metric", registry=registry)
    assert isinstance(seg, SegMIoUMetric)
    seg.update([torch.tensor([0, 1, 2])], {"labels": [torch.tensor([0, 1, 1])]})
    assert seg.compute()["miou"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_config_errors_name_the_key(registry) -> None:
    with pytest.raises(ConfigError, match="num_clases"):
        build({"type": "SegMIoUMetric", "num_clases": 3}, "metric", registry=registry)
