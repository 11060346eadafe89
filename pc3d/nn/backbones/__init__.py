"""Image / BEV backbones returning multi-scale features (see `base.Backbone` for the contract)."""

from pc3d.nn.backbones.alexnet import AlexNet
from pc3d.nn.backbones.base import Backbone
from pc3d.nn.backbones.googlenet import GoogLeNet
from pc3d.nn.backbones.lenet import LeNet5
from pc3d.nn.backbones.mlp import MLP
from pc3d.nn.backbones.resnet import BasicBlock, Bottleneck, ResNet
from pc3d.nn.backbones.vgg import VGG

__all__ = ["MLP", "VGG", "AlexNet", "Backbone", "BasicBlock", "Bottleneck", "GoogLeNet", "LeNet5", "ResNet"]
