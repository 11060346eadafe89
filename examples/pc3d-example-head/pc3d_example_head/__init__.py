"""An example third-party pc3d plugin: a CenterPoint-style head with a separate branch per output
(heatmap, centre offset, z, log size, sin/cos yaw), usable inside pc3d-det3d's BEVDetector."""

from pathlib import Path

import torch
from torch import Tensor, nn

from pc3d.plugin_api import Registrar, hookimpl
from pc3d_det3d import CenterHeadBase, CenterHeadOutput


def branch(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, cout, 1))


class ExampleHead(CenterHeadBase):  # targets, loss and decoding come from the base
    def __init__(self, in_channels: int, num_classes: int, hidden_channels: int = 32) -> None:
        super().__init__(in_channels, num_classes)
        self.heatmap = branch(in_channels, hidden_channels, num_classes)
        self.boxes = nn.ModuleList(branch(in_channels, hidden_channels, n) for n in (2, 1, 3, 2))

    def forward(self, bev: Tensor) -> CenterHeadOutput:
        return CenterHeadOutput(self.heatmap(bev), torch.cat([b(bev) for b in self.boxes], dim=1))


@hookimpl
def pc3d_register(registry: Registrar) -> None:
    registry.add_head(ExampleHead)


@hookimpl
def pc3d_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
