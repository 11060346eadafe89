"""What is drawn over a rendered frame: box wireframes, box labels, the legend and a scale bar.

The boxes are rasterised here rather than drawn as Open3D line sets: OpenGL line widths above
1 px are honoured by Mesa's EGL context but not by its GLX one (Xvfb), nor by many desktop
drivers, so lines drawn by Open3D would change thickness with the machine. Drawn last, the boxes
also stay visible over dense points.
"""

from __future__ import annotations

import numpy as np

from pc3d.vis import geometry, image
from pc3d.vis.backend import default_line_width
from pc3d.vis.camera import Camera, Region, frame_axes
from pc3d.vis.scene import Scene


def draw_boxes(img: np.ndarray, scene: Scene, cam: Camera, bev: bool = False) -> np.ndarray:
    """`img` with the scene's box wireframes drawn through `cam` (a copy); `bev`: outlines only."""
    if len(scene.segments) == 0:
        return img
    if bev:
        segments = geometry.bev_segments(scene.corners, scene.mode).reshape(-1, 2, 3)
        colors = np.repeat(scene.box_color, geometry.BEV_SEGMENTS_PER_BOX, axis=0)
    else:
        segments, colors = scene.segments, scene.segment_colors
    cam_xyz = segments @ cam.extrinsic[:3, :3].T + cam.extrinsic[:3, 3]  # [S, 2, 3]
    projection = np.concatenate([cam.intrinsic, np.zeros((3, 1))], axis=1)
    pix, visible = image.project_segments(cam_xyz, projection)
    width = int(default_line_width((cam.width, cam.height)))
    return image.draw_segments(img, pix[visible], colors[visible], width=width)


def draw_box_labels(img: np.ndarray, corners_px: np.ndarray, front: np.ndarray, scene: Scene) -> np.ndarray:
    """Each box's text centred above its projected corners `[M, 8, 2]` (boxes in `front` only)."""
    anchors = np.stack([corners_px[..., 0].mean(axis=1), corners_px[..., 1].min(axis=1)], axis=1)
    texts = [t for t, f in zip(scene.box_text, front, strict=True) if f]
    return image.draw_texts(img, anchors[front], texts, scene.box_color[front])


def pixels_per_metre(cam: Camera, region: Region, mode: str) -> float:
    """Image scale of a bird's-eye view: pixels for one metre forward at the bottom of `region`."""
    # The view was fitted at the bottom of the scene: measure from the middle of the region there.
    fwd, left, up = frame_axes(mode)
    mid = sum(region.forward) / 2.0 * fwd + sum(region.left) / 2.0 * left + region.up[0] * up
    uv, _ = cam.project(np.stack([mid, mid + fwd]))
    return float(np.linalg.norm(uv[1] - uv[0]))


def draw_overlays(
    img: np.ndarray, scene: Scene, cam: Camera, region: Region, view: str, labels: bool, legend: bool
) -> np.ndarray:
    """`img` with box `labels` and the `legend` (plus a scale bar in `bev`) drawn as asked."""
    if labels and len(scene.corners):
        uv, depth = cam.project(scene.corners.reshape(-1, 3))
        front = np.asarray((depth.reshape(-1, 8) > cam.z_near).all(axis=1))
        img = draw_box_labels(img, uv.reshape(-1, 8, 2), front, scene)
    if legend:
        img = image.draw_legend(img, scene.legend, scene.legend_title)
        if view == "bev":
            img = image.draw_scale_bar(img, pixels_per_metre(cam, region, scene.mode))
    return img
