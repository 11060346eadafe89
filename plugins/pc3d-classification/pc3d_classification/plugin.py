"""Hook implementations of the classification plugin (entry point ``classification``).

pc3d's core registers no backbones; the ``pc3d.nn`` ones are registered here, once, under their
class names (other plugins, det2d included, use them by name: ``type: ResNet``).
"""

from __future__ import annotations

from pathlib import Path

from pc3d.nn import MLP, VGG, AlexNet, GoogLeNet, LeNet5, ResNet
from pc3d.plugins import Registrar, hookimpl
from pc3d_classification.backbones import ConvNet
from pc3d_classification.datasets import DigitsDataset
from pc3d_classification.heads import LinearClsHead
from pc3d_classification.metrics import TopKAccuracy
from pc3d_classification.models import ImageClassifier

CORE_BACKBONES = (MLP, LeNet5, AlexNet, VGG, GoogLeNet, ResNet)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_backbone(ConvNet)
    for backbone in CORE_BACKBONES:
        registry.add_backbone(backbone)
    registry.add_head(LinearClsHead)
    registry.add_model(ImageClassifier)
    registry.add_dataset(DigitsDataset)
    registry.add_metric(TopKAccuracy)


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
