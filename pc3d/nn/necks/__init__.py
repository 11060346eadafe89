"""Necks: turn backbone features into the maps the heads read."""

from pc3d.nn.necks.fpn import FPN

__all__ = ["FPN"]
