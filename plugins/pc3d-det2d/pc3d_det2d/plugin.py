"""Hook implementations of the det2d plugin (entry point ``det2d``)."""

from __future__ import annotations

from pathlib import Path

from pc3d.plugins import Registrar, hookimpl
from pc3d_det2d.backbones import StridedConvNet
from pc3d_det2d.detectors import SingleStageDetector2D
from pc3d_det2d.heads import SingleLevelFCOSHead


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_backbone(StridedConvNet)
    registry.add_head(SingleLevelFCOSHead)
    registry.add_model(SingleStageDetector2D)


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
