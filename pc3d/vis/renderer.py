"""Render point clouds with ground-truth and predicted boxes: to an array/PNG, or in a window.

`render()` builds the scene (`pc3d.vis.scene`), draws its points with Open3D's legacy
`Visualizer` in a hidden window (`pc3d.vis.backend`: Xvfb, or EGL when there is no display at
all), reads the frame back, and draws boxes, labels, legend and scale bar over it
(`pc3d.vis.overlays`). The camera of each view is fixed by the scene extent (`pc3d.vis.camera`),
so the same input gives the same pixels. `show()` opens the same scene in an interactive window.
`render_camera_view()` projects the boxes onto a camera image instead (no OpenGL needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.vis import backend, image
from pc3d.vis._open3d import check_interactive_display
from pc3d.vis.camera import VIEWS, Camera, Region, boxes_region, reframe, scene_region, view_camera
from pc3d.vis.overlays import draw_box_labels, draw_boxes, draw_overlays
from pc3d.vis.png import check_png_path, save_png
from pc3d.vis.scene import Scene, as_box_set, build_scene, mode_name


def parse_size(size: object) -> tuple[int, int]:
    """`(W, H)` from `(W, H)` or `"WxH"`.

    Raises:
        FormatError: anything else, or a side outside 16..8192 pixels.
    """
    pair: object = size
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise FormatError(f"image size {size!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
        pair = (int(parts[0]), int(parts[1]))
    try:
        if not isinstance(pair, Iterable):
            raise TypeError(pair)
        w, h = (int(v) for v in pair)
    except (TypeError, ValueError):
        raise FormatError(f"image size {size!r}: expected (width, height)") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise FormatError(f"image size {w}x{h} is outside 16..8192 pixels per side")
    return w, h


def _check_view(view: str) -> None:
    if view not in VIEWS:
        raise FormatError(
            f"unknown view {view!r}; valid views are {', '.join(VIEWS)} (and 'camera' with an image)"
        )


def scene_camera(
    scene: Scene,
    view: str,
    size: tuple[int, int],
    region: Region | None = None,
    forward_only: bool = False,
    *,
    bev_range: Sequence[float] | None = None,
    center: Sequence[float] | None = None,
    zoom: float = 1.0,
) -> tuple[Camera, Region]:
    """The fixed camera `render` uses for `scene` and `view`, and the scene extent it frames.

    Without `region`, a scene with boxes frames the boxes plus a margin (`boxes_region`), one
    without frames the cloud (`scene_region`); `bev_range`, `center` and `zoom` then adjust that
    extent (see `render`).
    """
    _check_view(view)
    if region is None:
        if len(scene.corners) and bev_range is None:
            region = boxes_region(scene.corners, scene.points, scene.mode)
        else:
            corners = scene.corners if len(scene.corners) else None
            region = scene_region(scene.points, corners, scene.mode, forward_only)
    if bev_range is not None or center is not None or zoom != 1.0:
        extent = None if bev_range is None else _four(bev_range)
        region = reframe(
            region, extent, None if center is None else (float(center[0]), float(center[1])), zoom
        )
    return view_camera(view, region, size, scene.mode), region


def _four(values: Sequence[float]) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise FormatError(f"range {list(values)}: expected four numbers X0 Y0 X1 Y1 (metres)")
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])


def render(
    points: object,
    boxes: object = None,
    pred: object = None,
    *,
    out: str | Path | None = None,
    view: str = "bev",
    size: tuple[int, int] | str = (1280, 720),
    mode: str | None = None,
    lidar2cam: np.ndarray | None = None,
    color_by: str | None = None,
    score_thr: float = 0.0,
    labels: bool = False,
    legend: bool = True,
    class_names: Sequence[str] | None = None,
    region: Region | None = None,
    forward_only: bool = False,
    bev_range: Sequence[float] | None = None,
    center: Sequence[float] | None = None,
    zoom: float = 1.0,
    point_labels: object = None,
) -> np.ndarray:
    """Render `points` with GT `boxes` and `pred`ictions off-screen.

    Args:
        points: `[N, 3+C]` array/tensor (x, y, z, then e.g. intensity) or a `pc3d.structures`
            points object.
        boxes: ground truth: a `BoxSet`, a `pc3d.io.BoxFile`, a box-file mapping, a
            `pc3d.structures` box object or an array `[M, 7+C]`. Drawn in greens/yellows/blues,
            one colour per class; each box has a cross on its front face and a line from its
            centre to that face.
        pred: predictions, as `boxes`; drawn in reds/magentas/oranges.
        out: also write the image there as PNG (parent folders are created).
        view: `bev`, `front` or `orbit` (see `pc3d.vis.camera`).
        size: `(width, height)` or `"WxH"`.
        mode: the cloud's coordinate system, which everything is drawn in: `lidar` (default),
            `camera` or `depth`; taken from a points object when not given.
        lidar2cam: `[4, 4]` LiDAR -> camera matrix, needed to put camera boxes on a LiDAR cloud.
        color_by: points coloured by `height` (the default), `intensity` (4th column) or
            `label`: the class in `point_labels` when given (the default then), else the colour
            of the box holding the point.
        score_thr: predictions scoring below it are dropped.
        labels: write each box's class (and score) next to it; labels are placed so that none
            covers another (nor the legend and bars).
        legend: draw the class legend (and, in `bev`, a scale bar; with height/intensity
            colours, a colour bar with the values at the ramp's ends).
        class_names: names for integer box labels and for the ids in `point_labels`.
        region: frame this extent instead of the one computed from the scene.
        forward_only: compute the extent from points in front of the sensor only (for a scene
            without boxes: with boxes, the default view frames the boxes plus a margin).
        bev_range: `(x0, y0, x1, y1)`: frame this ground area instead, metres along the frame's
            forward and left axes (LiDAR x and y).
        center: `(x, y)`: centre the view there (same axes).
        zoom: scale the framed area: 2 shows half the width (objects twice as large).
        point_labels: `int[N]` class id of each point (negative: ignored, grey), e.g. a
            segmentation; points are coloured by class with a legend row per class.

    Returns:
        The image, `uint8[H, W, 3]`.

    Raises:
        DisplayUnavailableError: no OpenGL context can be had (the message says what to install
            or run).
        MissingDependencyError: open3d is not installed.
        FormatError, ShapeError: bad input.
    """
    wh = parse_size(size)
    _check_view(view)
    if out is not None:
        check_png_path(out)
    scene = build_scene(
        points,
        boxes,
        pred,
        mode=mode,
        lidar2cam=lidar2cam,
        color_by=color_by,
        score_thr=score_thr,
        class_names=class_names,
        point_labels=point_labels,
    )
    cam, framed = scene_camera(
        scene, view, wh, region, forward_only, bev_range=bev_range, center=center, zoom=zoom
    )
    img = draw_boxes(backend.capture_points(scene, cam), scene, cam, bev=view == "bev")
    img = draw_overlays(img, scene, cam, framed, view, labels, legend, color_bar=True)
    if out is not None:
        save_png(img, out)
    return img


# Same keywords as render on purpose: show opens the scene render draws, and both are public calls
# (a shared options object would change their signatures).
def show(
    points: object,
    boxes: object = None,
    pred: object = None,
    *,
    view: str = "bev",
    size: tuple[int, int] | str = (1280, 720),
    mode: str | None = None,
    lidar2cam: np.ndarray | None = None,
    color_by: str | None = None,
    score_thr: float = 0.0,
    class_names: Sequence[str] | None = None,
    region: Region | None = None,
    forward_only: bool = False,
    bev_range: Sequence[float] | None = None,
    center: Sequence[float] | None = None,
    zoom: float = 1.0,
    point_labels: object = None,
) -> None:
    """Open an interactive Open3D window on the scene `render` would draw (same arguments).

    The window starts at the `view` camera; the legend is printed to stdout, since the legacy
    window cannot draw text. Returns when the window is closed.

    Raises:
        DisplayUnavailableError: no display to open a window on (the message suggests `--out`).
    """
    wh = parse_size(size)
    check_interactive_display()
    # The scene and camera of render, spelled out again: a helper would take these same fifteen
    # keywords, so the call would be no shorter than what it replaced.
    scene = build_scene(
        points,
        boxes,
        pred,
        mode=mode,
        lidar2cam=lidar2cam,
        color_by=color_by,
        score_thr=score_thr,
        class_names=class_names,
        point_labels=point_labels,
    )
    cam, _ = scene_camera(
        scene, view, wh, region, forward_only, bev_range=bev_range, center=center, zoom=zoom
    )
    for entry in scene.legend:
        print(f"{entry.text}: rgb{tuple(int(c) for c in entry.color)}")
    if scene.color_scale is not None:
        scale = scene.color_scale
        print(f"point colours: {scale.title} from {scale.lo:.3g} (dark blue) to {scale.hi:.3g} (pale)")
    backend.show_scene(scene, cam)


def show_image(img: np.ndarray, title: str = "pc3d show") -> None:
    """Show `uint8[H, W, 3]` `img` (e.g. a camera view) in an Open3D window until it is closed."""
    backend.show_image_window(img, title)


def render_camera_view(
    img: np.ndarray | str | Path,
    boxes: object = None,
    pred: object = None,
    *,
    projection: np.ndarray,
    lidar2cam: np.ndarray | None = None,
    mode: str | None = None,
    score_thr: float = 0.0,
    labels: bool = False,
    legend: bool = True,
    class_names: Sequence[str] | None = None,
    out: str | Path | None = None,
) -> np.ndarray:
    """Project 3D boxes onto a camera image.

    Args:
        img: `uint8[H, W, 3]` or an image file.
        boxes: ground truth, as in `render`; converted to camera coordinates (LiDAR boxes
            through `lidar2cam`).
        pred: predictions, as `boxes`.
        projection: `[3, 4]` (or 4x4) rectified camera -> pixel matrix (KITTI `P2`).
        lidar2cam: `[4, 4]` LiDAR -> camera matrix.
        mode: coordinate system of inputs that do not state one (default camera).
        score_thr: predictions scoring below it are dropped.
        labels: write each box's class (and score) next to it.
        legend: draw the class legend.
        class_names: names for integer labels.
        out: also write the image there as PNG.

    Returns:
        The drawn image, `uint8[H, W, 3]`.

    Raises:
        FormatError, ShapeError: bad input.
    """
    proj = image.check_projection(projection, "projection (P2)")
    if out is not None:
        check_png_path(out)
    base = image.load_image(str(img)) if isinstance(img, (str, Path)) else np.asarray(img, dtype=np.uint8)
    if base.ndim != 3 or base.shape[2] != 3:
        raise ShapeError(f"image: expected shape (H, W, 3), got {base.shape}")
    # Plain arrays are taken as camera boxes unless `mode` says otherwise.
    default_mode = mode_name(mode or "camera")
    gt = None if boxes is None else as_box_set(boxes, default_mode, class_names, "boxes")
    pr = None if pred is None else as_box_set(pred, default_mode, class_names, "pred")
    scene = build_scene(
        np.zeros((0, 3)),
        gt,
        pr,
        mode="camera",
        lidar2cam=lidar2cam,
        score_thr=score_thr,
        class_names=class_names,
    )
    pix, visible = image.project_segments(scene.segments, proj)
    width = max(2, round(min(base.shape[:2]) / 250))
    drawn = image.draw_segments(base, pix[visible], scene.segment_colors[visible], width=width)
    avoid = None
    if legend:
        rect = image.legend_rect(drawn.shape, scene.legend, scene.legend_title)
        avoid = None if rect is None else np.array([rect], dtype=np.float64)
        drawn = image.draw_legend(drawn, scene.legend, scene.legend_title)
    if labels and len(scene.corners):
        drawn = _camera_view_labels(drawn, scene, proj, avoid)
    if out is not None:
        save_png(drawn, out)
    return drawn


def _camera_view_labels(
    img: np.ndarray, scene: Scene, projection: np.ndarray, avoid: np.ndarray | None
) -> np.ndarray:
    """`img` with each box's text above its corners projected by `projection` `[3, 4]`, clear of `avoid`."""
    pts = scene.corners.reshape(-1, 3)
    homo = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ projection.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = homo[:, :2] / homo[:, 2:3]
    front = np.asarray((pts[:, 2].reshape(-1, 8) > image.NEAR_PLANE).all(axis=1))
    return draw_box_labels(img, uv.reshape(-1, 8, 2), front, scene, avoid)
