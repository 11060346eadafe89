"""Visualisation: point clouds with boxes and predictions, in an Open3D window or as PNG images.

    import pc3d.vis
    img = pc3d.vis.render(points, boxes=gt, pred=dets, view="bev", out="shot.png")  # uint8[H, W, 3]
    pc3d.vis.show(points, boxes=gt)                                               # interactive window

Modules, by responsibility: `scene` (inputs -> a validated, converted, coloured `Scene`),
`camera` (fixed view cameras), `geometry` (wireframe segments, colours), `backend` (Open3D),
`overlays` (boxes, labels, legend and scale bar over a frame), `image` (drawing primitives,
camera-image projection), `png` (PNG files) and `renderer` (the entry points below).

Only `pc3d.vis` imports open3d, lazily (when something is rendered): importing this package works
without it. Off-screen rendering works under `xvfb-run`, and without any display through EGL.
"""

from pc3d.vis._open3d import DisplayUnavailableError
from pc3d.vis.camera import VIEWS, Camera, Region, scene_region, view_camera
from pc3d.vis.geometry import class_color, wireframe_segments
from pc3d.vis.png import save_png
from pc3d.vis.renderer import parse_size, render, render_camera_view, scene_camera, show, show_image
from pc3d.vis.scene import BoxSet, Scene, as_box_set, build_scene, convert_box_set

__all__ = [
    "VIEWS",
    "BoxSet",
    "Camera",
    "DisplayUnavailableError",
    "Region",
    "Scene",
    "as_box_set",
    "build_scene",
    "class_color",
    "convert_box_set",
    "parse_size",
    "render",
    "render_camera_view",
    "save_png",
    "scene_camera",
    "scene_region",
    "show",
    "show_image",
    "view_camera",
    "wireframe_segments",
]
