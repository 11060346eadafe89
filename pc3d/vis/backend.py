"""The Open3D backend: a scene's points in a legacy `Visualizer`, off-screen or in a window.

Off-screen, only the points are drawn by Open3D (`capture_points`); boxes are rasterised over the
frame by `pc3d.vis.overlays` (OpenGL line widths differ between drivers, see there). In a window
the boxes are Open3D line sets, since the user can turn the view. `pc3d.vis._open3d` holds the
import and the display checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pc3d.vis import geometry
from pc3d.vis._open3d import (
    DisplayUnavailableError,
    check_interactive_display,
    create_window,
    import_open3d,
    offscreen_help,
)
from pc3d.vis.camera import Camera
from pc3d.vis.scene import Scene


def default_point_size(size: tuple[int, int]) -> float:
    """Point size in pixels for an image of `size` (W, H).

    About 2 px at 512 px high and 3 px at 720: dense enough to read surfaces, sparse returns
    still visible.
    """
    return max(1.0, round(min(size) / 256.0 * 2.0) / 2.0)


def default_line_width(size: tuple[int, int]) -> float:
    """Box line width in pixels for an image of `size` (W, H)."""
    return float(max(2, round(min(size) / 300.0)))


def make_visualizer(
    o3d: Any, scene: Scene, size: tuple[int, int], visible: bool, with_boxes: bool, title: str = "pc3d"
) -> Any:
    """An Open3D `Visualizer` holding the scene's points (and box line sets with `with_boxes`).

    Raises:
        DisplayUnavailableError: no OpenGL context can be created.
    """
    vis = o3d.visualization.Visualizer()
    if not create_window(vis, title, size[0], size[1], visible):
        raise DisplayUnavailableError(offscreen_help())
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(scene.points[:, :3]))
    cloud.colors = o3d.utility.Vector3dVector(scene.point_colors.astype(np.float64) / 255.0)
    vis.add_geometry(cloud)
    if with_boxes and len(scene.segments):
        lines = o3d.geometry.LineSet(
            o3d.utility.Vector3dVector(scene.segments.reshape(-1, 3)),
            o3d.utility.Vector2iVector(np.arange(2 * len(scene.segments)).reshape(-1, 2)),
        )
        lines.colors = o3d.utility.Vector3dVector(scene.segment_colors.astype(np.float64) / 255.0)
        vis.add_geometry(lines)
    opt = vis.get_render_option()
    opt.background_color = np.asarray(geometry.BACKGROUND, dtype=np.float64) / 255.0
    opt.point_size = default_point_size(size)
    opt.line_width = default_line_width(size)
    opt.light_on = False  # flat colours: a box pixel has exactly its box's colour
    opt.show_coordinate_frame = False
    return vis


def apply_camera(o3d: Any, vis: Any, cam: Camera) -> None:
    """Set `vis`'s view to the pinhole camera `cam` exactly.

    Raises:
        RuntimeError: Open3D did not take the camera (e.g. its window has another size).
    """
    params = o3d.camera.PinholeCameraParameters()
    params.intrinsic = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, cam.intrinsic)
    params.extrinsic = cam.extrinsic
    ctl = vis.get_view_control()
    # Fixed clipping planes: Open3D would otherwise derive them from the geometry's extent.
    ctl.set_constant_z_near(cam.z_near)
    ctl.set_constant_z_far(cam.z_far)
    ok = ctl.convert_from_pinhole_camera_parameters(params, allow_arbitrary=False)
    got = ctl.convert_to_pinhole_camera_parameters()
    if not ok or not (
        np.allclose(got.extrinsic, cam.extrinsic, atol=1e-6 * max(1.0, np.abs(cam.extrinsic).max()))
        and np.allclose(got.intrinsic.intrinsic_matrix, cam.intrinsic, rtol=1e-6)
    ):
        # Guards the pixel/world correspondence everything else relies on.
        raise RuntimeError(
            f"Open3D did not take the {cam.width}x{cam.height} view camera (its window is "
            f"{got.intrinsic.width}x{got.intrinsic.height})"
        )


def capture_points(scene: Scene, cam: Camera) -> np.ndarray:
    """The scene's points rendered off-screen through `cam`, as `uint8[H, W, 3]` (no boxes).

    Raises:
        MissingDependencyError: open3d is not installed.
        DisplayUnavailableError: no OpenGL context can be created.
    """
    o3d = import_open3d()
    vis = make_visualizer(o3d, scene, (cam.width, cam.height), visible=False, with_boxes=False)
    try:
        apply_camera(o3d, vis, cam)
        vis.poll_events()
        vis.update_renderer()
        buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    if buf.shape[:2] != (cam.height, cam.width):
        raise RuntimeError(
            f"Open3D returned a {buf.shape[1]}x{buf.shape[0]} frame for a {cam.width}x{cam.height} view"
        )
    return np.rint(np.clip(buf, 0.0, 1.0) * 255.0).astype(np.uint8)


def show_scene(scene: Scene, cam: Camera, title: str = "pc3d show") -> None:
    """Open an interactive window on `scene` starting at `cam`; returns when it is closed.

    Raises:
        DisplayUnavailableError: no display to open a window on.
    """
    check_interactive_display()
    o3d = import_open3d()
    vis = make_visualizer(o3d, scene, (cam.width, cam.height), visible=True, with_boxes=True, title=title)
    try:
        apply_camera(o3d, vis, cam)
        run_window(vis)
    finally:
        vis.destroy_window()


def show_image_window(img: np.ndarray, title: str = "pc3d show") -> None:
    """Show `uint8[H, W, 3]` `img` in an Open3D window until it is closed.

    Raises:
        DisplayUnavailableError: no display to open a window on.
    """
    check_interactive_display()
    img = np.ascontiguousarray(img, dtype=np.uint8)
    o3d = import_open3d()
    vis = o3d.visualization.Visualizer()
    if not create_window(vis, title, img.shape[1], img.shape[0], True):
        raise DisplayUnavailableError(offscreen_help())
    try:
        vis.add_geometry(o3d.geometry.Image(img))
        run_window(vis)
    finally:
        vis.destroy_window()


def run_window(vis: Any) -> None:
    """Hand control to the user until the window is closed (a seam for tests)."""
    vis.run()
