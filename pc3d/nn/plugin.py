"""Registers the shared 2D core's building blocks (hook ``pc3d_register``) as a core plugin.

Backbones and the FPN neck live in ``pc3d.nn``, which every model family uses; registering them
in the core (``pc3d.plugin_manager.CORE_PLUGINS``) lets configs of any plugin name them (``type:
ResNet``) without depending on another plugin being installed or selected.
"""

from __future__ import annotations

from pc3d.nn import FPN, MLP, VGG, AlexNet, GoogLeNet, LeNet5, ResNet
from pc3d.plugin_api import Registrar, hookimpl

BACKBONES = (MLP, LeNet5, AlexNet, VGG, GoogLeNet, ResNet)


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    for backbone in BACKBONES:
        registry.add_backbone(backbone)
    registry.add_neck(FPN)
