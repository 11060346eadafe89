"""Vectorised ops on points and boxes: points in boxes (more in later modules)."""

from pc3d.ops.points_in_boxes import points_in_boxes_first, points_in_boxes_mask

__all__ = ["points_in_boxes_first", "points_in_boxes_mask"]
