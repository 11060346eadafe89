"""Necks: turn backbone features into the maps the heads read."""

from pc3d.nn.necks.fpn import FPN
from pc3d.nn.necks.second_fpn import SECONDFPN

__all__ = ["FPN", "SECONDFPN"]
