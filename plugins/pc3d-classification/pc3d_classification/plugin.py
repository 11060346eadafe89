"""Hook implementations of the classification plugin (entry point ``classification``).

The ``pc3d.nn`` backbones (``ResNet``, ``LeNet5`` ...) are registered by pc3d's core
(``pc3d.nn.plugin``); this plugin adds its own small ``ConvNet``, the head, model, data sets (scikit-learn's
digits, your own images in one folder per class) and metric.
"""

from __future__ import annotations

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_classification.backbones import ConvNet
from pc3d_classification.datasets import DigitsDataset
from pc3d_classification.heads import LinearClsHead
from pc3d_classification.image_folder import ImageFolderDataset
from pc3d_classification.metrics import TopKAccuracy
from pc3d_classification.models import ImageClassifier


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_backbone(ConvNet)
    registry.add_head(LinearClsHead)
    registry.add_model(ImageClassifier)
    registry.add_dataset(DigitsDataset)
    registry.add_dataset(ImageFolderDataset)
    registry.add_metric(TopKAccuracy)
