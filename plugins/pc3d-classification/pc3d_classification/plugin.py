"""Hook implementations of the classification plugin (entry point ``classification``)."""

from __future__ import annotations

from pathlib import Path

from pc3d.plugins import Registrar, hookimpl
from pc3d_classification.backbones import ConvNet
from pc3d_classification.heads import LinearClsHead
from pc3d_classification.models import ImageClassifier


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_backbone(ConvNet)
    registry.add_head(LinearClsHead)
    registry.add_model(ImageClassifier)


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
