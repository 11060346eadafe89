"""Hook implementations of the seg plugin (entry point ``seg``)."""

from __future__ import annotations

from pathlib import Path

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_seg.backbones import PointNetEncoder
from pc3d_seg.heads import PointMLPSegHead
from pc3d_seg.models import PointSegmentor


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_backbone(PointNetEncoder)
    registry.add_head(PointMLPSegHead)
    registry.add_model(PointSegmentor)


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
