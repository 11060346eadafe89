"""pc3d first-party plugin: classification components (entry point ``classification``)."""

from pc3d_classification.backbones import ConvNet
from pc3d_classification.heads import LinearClsHead
from pc3d_classification.models import ImageClassifier

__all__ = ["ConvNet", "ImageClassifier", "LinearClsHead"]
