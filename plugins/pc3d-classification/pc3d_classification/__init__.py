"""pc3d first-party plugin: image classification (entry point ``classification``).

An :class:`ImageClassifier` is any registered backbone (``pc3d.nn``'s MLP, LeNet5, AlexNet,
VGG, GoogLeNet, ResNet, or this plugin's small ConvNet) + global average pooling + a linear
head; :class:`DigitsDataset` serves scikit-learn's handwritten digits and :class:`TopKAccuracy`
scores the predictions.
"""

from pc3d_classification.backbones import ConvNet
from pc3d_classification.datasets import DIGITS_CLASSES, DigitsDataset
from pc3d_classification.heads import LinearClsHead
from pc3d_classification.image_folder import ImageFolderDataset
from pc3d_classification.metrics import TopKAccuracy
from pc3d_classification.models import ImageClassifier

__all__ = [
    "DIGITS_CLASSES",
    "ConvNet",
    "DigitsDataset",
    "ImageClassifier",
    "ImageFolderDataset",
    "LinearClsHead",
    "TopKAccuracy",
]
