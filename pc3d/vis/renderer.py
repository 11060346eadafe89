"""Render point clouds with ground-truth and predicted boxes: to an array/PNG, or in a window.

`render()` draws with Open3D's legacy `Visualizer` in a hidden window (Xvfb, or EGL when there is
no display at all), reads the frame back, and adds the legend, labels and scale bar with PIL. The
camera of each view is fixed by the scene extent (`pc3d.vis.camera`), so the same input gives the
same pixels. `show()` opens the same scene in an interactive window. `render_camera_view()`
projects the boxes onto a camera image instead (no OpenGL needed).

Boxes are drawn in the cloud's coordinate system (`mode`); boxes in another system are converted,
camera <-> LiDAR through `lidar2cam` (for KITTI, `R0_rect @ Tr_velo_to_cam`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.vis import geometry, image
from pc3d.vis._open3d import (
    DisplayUnavailableError,
    check_interactive_display,
    create_window,
    import_open3d,
    offscreen_help,
)
from pc3d.vis.camera import VIEWS, Camera, Region, frame_axes, scene_region, view_camera

COLOR_BY = ("height", "intensity", "label")


@dataclass
class BoxSet:
    """Boxes to draw with their class names and scores.

    `boxes` is `float64[M, 7+C]` bottom-centre boxes in coordinate system `mode`; `labels` holds
    `M` class names (or is None: all boxes get their set's first colour); `scores` is `float64[M]`
    or None.
    """

    boxes: np.ndarray
    mode: str = "lidar"
    labels: list[str] | None = None
    scores: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.boxes = geometry.check_boxes(self.boxes)
        self.mode = _mode_name(self.mode)
        m = len(self.boxes)
        if self.labels is not None:
            self.labels = [str(name) for name in self.labels]
            if len(self.labels) != m:
                raise ShapeError(f"{m} boxes but {len(self.labels)} labels")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
            if len(self.scores) != m:
                raise ShapeError(f"{m} boxes but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> BoxSet:
        """The boxes where `keep` (`bool[M]`) holds."""
        labels = None if self.labels is None else [n for n, k in zip(self.labels, keep, strict=True) if k]
        scores = None if self.scores is None else self.scores[keep]
        return BoxSet(self.boxes[keep], self.mode, labels, scores)


def _mode_name(mode: object) -> str:
    name = str(getattr(mode, "value", mode)).strip().lower()
    name = {"cam": "camera"}.get(name, name)
    if name not in geometry.MODES:
        raise FormatError(f"unknown coordinate system {mode!r}; valid ones are lidar, camera, depth")
    return name


def as_box_set(
    obj: object, mode: str | None = None, class_names: Sequence[str] | None = None, what: str = "boxes"
) -> BoxSet:
    """Coerce `obj` to a `BoxSet`.

    Accepts a `BoxSet`; a `pc3d.structures` box object (`LiDARBoxes3D`, ...: its own mode); a
    `pc3d.io.BoxFile` or a mapping in the box-file layout (`{"mode", "boxes", "labels",
    "scores"}`); or an array/tensor `[M, 7+C]`. `mode` is the system of inputs that do not state
    one (default LiDAR). Integer labels are looked up in `class_names` when given.
    """
    if isinstance(obj, BoxSet):
        return obj
    labels: Any = None
    scores: Any = None
    stated: object = None
    if isinstance(obj, Mapping):
        unknown = set(obj) - {"mode", "boxes", "labels", "scores", "columns", "meta"}
        if "boxes" not in obj or unknown:
            raise FormatError(
                f"{what}: a box mapping needs the key 'boxes' (and optionally mode, labels, scores); "
                f"got keys {sorted(obj)}"
            )
        boxes, stated, labels, scores = obj["boxes"], obj.get("mode"), obj.get("labels"), obj.get("scores")
    elif hasattr(obj, "boxes") and not hasattr(obj, "tensor"):  # pc3d.io.BoxFile and look-alikes
        boxes, stated = obj.boxes, getattr(obj, "mode", None)
        labels, scores = getattr(obj, "labels", None), getattr(obj, "scores", None)
    else:
        boxes = obj
    if hasattr(boxes, "tensor") and hasattr(type(boxes), "mode"):  # pc3d.structures boxes
        stated = stated or type(boxes).mode
        boxes = boxes.tensor
    box_mode = _mode_name(stated if stated is not None else (mode or "lidar"))
    if labels is not None:
        labels = _label_names(np.asarray(_to_numpy(labels)).reshape(-1).tolist(), class_names, what)
    scores = None if scores is None else _to_numpy(scores)
    return BoxSet(geometry.check_boxes(_to_numpy(boxes), what), box_mode, labels, scores)


def _to_numpy(value: object) -> object:
    """Tensors to numpy (anything else unchanged)."""
    detach = getattr(value, "detach", None)
    return detach().cpu().numpy() if callable(detach) else value


def _label_names(labels: list[Any], class_names: Sequence[str] | None, what: str) -> list[str]:
    if class_names is None:
        return [str(v) for v in labels]
    names = []
    for value in labels:
        if isinstance(value, str):
            names.append(value)
            continue
        index = int(value)
        if not 0 <= index < len(class_names):
            raise FormatError(f"{what}: label {index} is outside the {len(class_names)} class names")
        names.append(class_names[index])
    return names


def check_points(points: object, what: str = "points") -> np.ndarray:
    """`points` as `float64[N, 3+C]`; `ShapeError`/`FormatError` naming `what` otherwise."""
    if hasattr(points, "tensor"):  # pc3d points structure
        points = points.tensor
    try:
        arr = np.asarray(_to_numpy(points), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{what}: not a numeric array ({err})") from None
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ShapeError(f"{what}: expected shape (N, 3+) (x, y, z, ...), got {arr.shape}")
    bad = ~np.isfinite(arr[:, :3]).all(axis=1)
    if bad.any():
        raise FormatError(
            f"{what}: {int(bad.sum())} points hold NaN or infinite coordinates (first: row {int(np.argmax(bad))})"
        )
    return arr


def convert_box_set(boxes: BoxSet, mode: str, lidar2cam: np.ndarray | None = None) -> BoxSet:
    """`boxes` expressed in coordinate system `mode`.

    Camera <-> LiDAR uses `lidar2cam` (`float[4, 4]`, LiDAR -> rectified camera; for KITTI
    `R0_rect @ Tr_velo_to_cam`) and refuses to guess without it: the default axis swap has no
    translation and would put KITTI boxes metres off. Depth conversions use MMDetection3D's
    default axis permutations.
    """
    if boxes.mode == mode:
        return boxes
    rt_mat = None
    if {boxes.mode, mode} == {"camera", "lidar"}:
        if lidar2cam is None:
            raise FormatError(
                f"boxes are in {boxes.mode} coordinates and the cloud in {mode}: converting them needs the "
                "LiDAR->camera calibration (pass --calib CALIB.txt, or lidar2cam= in Python)"
            )
        mat = np.asarray(lidar2cam, dtype=np.float64)
        if mat.shape == (3, 4):
            mat = np.vstack([mat, [0.0, 0.0, 0.0, 1.0]])
        if mat.shape != (4, 4):
            raise ShapeError(f"lidar2cam: expected a 4x4 (or 3x4) matrix, got shape {mat.shape}")
        rt_mat = mat if boxes.mode == "lidar" else np.linalg.inv(mat)
    from pc3d.structures import convert_boxes

    converted = np.asarray(convert_boxes(boxes.boxes, boxes.mode, mode, rt_mat=rt_mat), dtype=np.float64)
    return BoxSet(converted, mode, boxes.labels, boxes.scores)


@dataclass(frozen=True)
class Scene:
    """Everything to draw, in the cloud's frame, after conversion, filtering and colouring.

    `segments` is `float64[S, 2, 3]` (`geometry.SEGMENTS_PER_BOX` per box, GT first, then
    predictions) with colours `uint8[S, 3]`; `corners` is `float64[M, 8, 3]` in the same order and
    `box_text`/`box_color` each box's label text and colour.
    """

    points: np.ndarray
    point_colors: np.ndarray
    mode: str
    gt: BoxSet
    pred: BoxSet
    segments: np.ndarray
    segment_colors: np.ndarray
    corners: np.ndarray
    box_text: list[str]
    box_color: np.ndarray
    legend: list[image.LegendEntry]
    legend_title: str | None


def build_scene(
    points: object,
    boxes: object = None,
    pred: object = None,
    *,
    mode: str | None = None,
    lidar2cam: np.ndarray | None = None,
    color_by: str = "height",
    score_thr: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> Scene:
    """Validate and prepare everything `render`/`show` draw (see `render` for the arguments)."""
    structure_mode = getattr(type(points), "mode", None)  # pc3d.structures points know their system
    if structure_mode is not None and mode is not None and _mode_name(structure_mode) != _mode_name(mode):
        raise FormatError(f"points are {_mode_name(structure_mode)} points but mode={mode!r} was given")
    mode = _mode_name(mode or structure_mode or "lidar")
    if color_by not in COLOR_BY:
        raise FormatError(f"unknown color_by {color_by!r}; valid choices are {', '.join(COLOR_BY)}")
    pts = check_points(points)
    empty = BoxSet(np.zeros((0, 7)), mode, [], np.zeros(0))
    gt = empty if boxes is None else convert_box_set(as_box_set(boxes, mode, class_names, "boxes"), mode, lidar2cam)
    pr = empty if pred is None else convert_box_set(as_box_set(pred, mode, class_names, "pred"), mode, lidar2cam)
    if pr.scores is not None and score_thr > 0:
        pr = pr.select(pr.scores >= score_thr)

    gt_names = gt.labels if gt.labels is not None else [geometry.UNLABELLED] * len(gt)
    pr_names = pr.labels if pr.labels is not None else [geometry.UNLABELLED] * len(pr)
    gt_colors, pr_colors = geometry.box_colors(gt_names, "gt"), geometry.box_colors(pr_names, "pred")
    corners = np.concatenate([geometry.box_corners(gt.boxes, mode), geometry.box_corners(pr.boxes, mode)])
    box_color = np.concatenate([gt_colors, pr_colors]).reshape(-1, 3)
    segments = geometry.wireframe_segments(corners)
    segment_colors = np.repeat(box_color, geometry.SEGMENTS_PER_BOX, axis=0)
    segments = segments.reshape(-1, 2, 3)

    pr_scores = pr.scores if pr.scores is not None else np.full(len(pr), np.nan)
    box_text = [n or "box" for n in gt_names] + [
        f"{n or 'pred'} {s:.2f}" if np.isfinite(s) else (n or "pred") for n, s in zip(pr_names, pr_scores, strict=True)
    ]

    point_colors = _point_colors(pts, mode, color_by, gt.boxes, gt_colors, pr.boxes, pr_colors)
    legend = _legend_entries("GT", gt_names, "gt") + _legend_entries("Pred", pr_names, "pred")
    title = f"pred score >= {score_thr:g}" if score_thr > 0 and pred is not None else None
    return Scene(pts, point_colors, mode, gt, pr, segments, segment_colors, corners, box_text, box_color, legend, title)


def _legend_entries(prefix: str, names: Sequence[str], source: str) -> list[image.LegendEntry]:
    if len(names) == 0:
        return []
    unique, counts = np.unique(np.asarray(names, dtype=str), return_counts=True)
    fallback = "boxes" if source == "gt" else "predictions"
    return [
        image.LegendEntry(f"{prefix} {name or fallback} ({count})", geometry.class_color(str(name), source))
        for name, count in zip(unique, counts, strict=True)
    ]


def _point_colors(
    pts: np.ndarray,
    mode: str,
    color_by: str,
    gt_boxes: np.ndarray,
    gt_colors: np.ndarray,
    pr_boxes: np.ndarray,
    pr_colors: np.ndarray,
) -> np.ndarray:
    if color_by == "height":
        _, _, up = frame_axes(mode)
        return geometry.ramp_colors(pts[:, :3] @ up)
    if color_by == "intensity":
        if pts.shape[1] < 4:
            raise ShapeError(
                f"color_by='intensity' needs a 4th point column (intensity); the cloud has {pts.shape[1]} columns"
            )
        return geometry.ramp_colors(pts[:, 3])
    # label: a point takes the colour of the first GT box holding it, else of the first prediction.
    import torch

    from pc3d.ops.points_in_boxes import points_in_boxes_first

    colors = np.tile(np.array(geometry.GREY_POINT, dtype=np.uint8), (len(pts), 1))
    xyz, boxes_all = pts[:, :3], np.concatenate([gt_boxes[:, :7], pr_boxes[:, :7]])
    if mode == "camera":
        # points_in_boxes wants z-up boxes; the default camera->LiDAR axis swap is exact for this.
        from pc3d.structures import convert_boxes, convert_points

        xyz = np.asarray(convert_points(xyz, "camera", "lidar"))
        boxes_all = np.asarray(convert_boxes(boxes_all, "camera", "lidar"))
    table = np.concatenate([gt_colors, pr_colors]).reshape(-1, 3)
    if len(boxes_all):
        owner = points_in_boxes_first(torch.as_tensor(xyz), torch.as_tensor(boxes_all)).numpy()
        hit = owner >= 0
        colors[hit] = table[owner[hit]]
    return colors


# ------------------------------------------------------------------ Open3D


def _default_point_size(size: tuple[int, int]) -> float:
    # About 2 px at 512 px high, 3 px at 720: dense enough to read surfaces, sparse returns visible.
    return max(1.0, round(min(size) / 256.0 * 2.0) / 2.0)


def _default_line_width(size: tuple[int, int]) -> float:
    return float(max(2, round(min(size) / 300.0)))


def _make_visualizer(
    o3d: Any, scene: Scene, size: tuple[int, int], visible: bool, with_boxes: bool, title: str = "pc3d"
) -> Any:
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
    opt.point_size = _default_point_size(size)
    opt.line_width = _default_line_width(size)
    opt.light_on = False  # flat colours: a box pixel has exactly its box's colour
    opt.show_coordinate_frame = False
    return vis


def _apply_camera(o3d: Any, vis: Any, cam: Camera) -> None:
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


def _capture(o3d: Any, scene: Scene, cam: Camera, view: str) -> np.ndarray:
    """The points rendered by Open3D, then the boxes drawn over them (`uint8[H, W, 3]`)."""
    vis = _make_visualizer(o3d, scene, (cam.width, cam.height), visible=False, with_boxes=False)
    try:
        _apply_camera(o3d, vis, cam)
        vis.poll_events()
        vis.update_renderer()
        buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    finally:
        vis.destroy_window()
    if buf.shape[:2] != (cam.height, cam.width):
        raise RuntimeError(f"Open3D returned a {buf.shape[1]}x{buf.shape[0]} frame for a {cam.width}x{cam.height} view")
    img = np.rint(np.clip(buf, 0.0, 1.0) * 255.0).astype(np.uint8)
    return draw_boxes(img, scene, cam, bev=view == "bev")


def draw_boxes(img: np.ndarray, scene: Scene, cam: Camera, bev: bool = False) -> np.ndarray:
    """`img` with the scene's box wireframes drawn through `cam` (a copy); `bev`: outlines only.

    The boxes are rasterised here rather than as Open3D line sets: OpenGL line widths above 1 px
    are honoured by Mesa's EGL context but not by its GLX one (Xvfb), nor by many desktop
    drivers, so lines drawn by Open3D would change thickness with the machine. Drawn last, the
    boxes also stay visible over dense points.
    """
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
    width = int(_default_line_width((cam.width, cam.height)))
    return image.draw_segments(img, pix[visible], colors[visible], width=width)


def parse_size(size: object) -> tuple[int, int]:
    """`(W, H)` from `(W, H)` or `"WxH"`; `FormatError` otherwise."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise FormatError(f"image size {size!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
        size = (int(parts[0]), int(parts[1]))
    try:
        w, h = (int(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise FormatError(f"image size {size!r}: expected (width, height)") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise FormatError(f"image size {w}x{h} is outside 16..8192 pixels per side")
    return w, h


def scene_camera(
    scene: Scene, view: str, size: tuple[int, int], region: Region | None = None, forward_only: bool = False
) -> tuple[Camera, Region]:
    """The fixed camera `render` uses for `scene` and `view`, and the scene extent it frames."""
    if view not in VIEWS:
        raise FormatError(f"unknown view {view!r}; valid views are {', '.join(VIEWS)} (and 'camera' with an image)")
    if region is None:
        corners = scene.corners if len(scene.corners) else None
        region = scene_region(scene.points, corners, scene.mode, forward_only)
    return view_camera(view, region, size, scene.mode), region


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
    color_by: str = "height",
    score_thr: float = 0.0,
    labels: bool = False,
    legend: bool = True,
    class_names: Sequence[str] | None = None,
    region: Region | None = None,
    forward_only: bool = False,
) -> np.ndarray:
    """Render `points` with GT `boxes` and `pred`ictions off-screen; the image as `uint8[H, W, 3]`.

    Args:
        points: `[N, 3+C]` array/tensor (x, y, z, then e.g. intensity) or a `pc3d.structures`
            points object.
        mode: the cloud's coordinate system, which everything is drawn in: `lidar` (default),
            `camera` or `depth`; taken from a points object when not given.
        boxes, pred: a `BoxSet`, a box-file mapping, a box structure or an array `[M, 7+C]`.
            Ground truth is drawn in greens/yellows/blues, predictions in reds/magentas/oranges,
            one colour per class; each box has a cross on its front face and a line from its
            centre to that face.
        out: also write the image there as PNG (parent folders are created).
        view: `bev`, `front` or `orbit` (see `pc3d.vis.camera`).
        size: `(width, height)` or `"WxH"`.
        lidar2cam: `[4, 4]` LiDAR -> camera matrix, needed to put camera boxes on a LiDAR cloud.
        color_by: points coloured by `height`, `intensity` (4th column) or `label` (box colour).
        score_thr: predictions scoring below it are dropped.
        labels: write each box's class (and score) next to it.
        legend: draw the class legend (and, in `bev`, a scale bar).
        class_names: names for integer labels.
        region: frame this extent instead of the one computed from the scene.
        forward_only: compute the extent from points in front of the sensor only.

    Raises `DisplayUnavailableError` when no OpenGL context can be had (the message says what to
    install or run), `MissingDependencyError` without open3d, and `FormatError`/`ShapeError` for
    bad input.
    """
    wh = parse_size(size)
    if view not in VIEWS:
        raise FormatError(f"unknown view {view!r}; valid views are {', '.join(VIEWS)} (and 'camera' with an image)")
    if out is not None:
        _check_png_path(out)
    scene = build_scene(
        points, boxes, pred, mode=mode, lidar2cam=lidar2cam, color_by=color_by, score_thr=score_thr,
        class_names=class_names,
    )
    cam, framed = scene_camera(scene, view, wh, region, forward_only)
    o3d = import_open3d()
    img = _capture(o3d, scene, cam, view)
    img = _overlay(img, scene, cam, framed, view, labels, legend)
    if out is not None:
        save_png(img, out)
    return img


def _overlay(
    img: np.ndarray, scene: Scene, cam: Camera, region: Region, view: str, labels: bool, legend: bool
) -> np.ndarray:
    if labels and len(scene.corners):
        uv, depth = cam.project(scene.corners.reshape(-1, 3))
        front = (depth.reshape(-1, 8) > cam.z_near).all(axis=1)
        img = _draw_labels(img, uv.reshape(-1, 8, 2), front, scene)
    if legend:
        img = image.draw_legend(img, scene.legend, scene.legend_title)
        if view == "bev":
            img = image.draw_scale_bar(img, _pixels_per_metre(cam, region, scene.mode))
    return img


def _draw_labels(img: np.ndarray, corners_px: np.ndarray, front: np.ndarray, scene: Scene) -> np.ndarray:
    """Each box's text centred above its projected corners `[M, 8, 2]` (boxes in `front` only)."""
    anchors = np.stack([corners_px[..., 0].mean(axis=1), corners_px[..., 1].min(axis=1)], axis=1)
    texts = [t for t, f in zip(scene.box_text, front, strict=True) if f]
    return image.draw_texts(img, anchors[front], texts, scene.box_color[front])


def _pixels_per_metre(cam: Camera, region: Region, mode: str) -> float:
    # Scale at the height the view was fitted at (the bottom of the scene): one metre forward
    # from the middle of the region.
    fwd, left, up = frame_axes(mode)
    mid = sum(region.forward) / 2.0 * fwd + sum(region.left) / 2.0 * left + region.up[0] * up
    uv, _ = cam.project(np.stack([mid, mid + fwd]))
    return float(np.linalg.norm(uv[1] - uv[0]))


def _check_png_path(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise FormatError(f"{path}: the output must be a .png file")
    return path


def save_png(img: np.ndarray, out: str | Path) -> Path:
    """Write `uint8[H, W, 3]` `img` to `out` as PNG (creating parent folders); the path written."""
    from PIL import Image

    path = _check_png_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path, optimize=True)
    return path


def show(
    points: object,
    boxes: object = None,
    pred: object = None,
    *,
    view: str = "bev",
    size: tuple[int, int] | str = (1280, 720),
    mode: str | None = None,
    lidar2cam: np.ndarray | None = None,
    color_by: str = "height",
    score_thr: float = 0.0,
    class_names: Sequence[str] | None = None,
    region: Region | None = None,
    forward_only: bool = False,
) -> None:
    """Open an interactive Open3D window on the scene `render` would draw (same arguments).

    The window starts at the `view` camera; the legend is printed to stdout, since the legacy
    window cannot draw text. Returns when the window is closed.
    """
    wh = parse_size(size)
    check_interactive_display()
    scene = build_scene(
        points, boxes, pred, mode=mode, lidar2cam=lidar2cam, color_by=color_by, score_thr=score_thr,
        class_names=class_names,
    )
    cam, _ = scene_camera(scene, view, wh, region, forward_only)
    o3d = import_open3d()
    for entry in scene.legend:
        print(f"{entry.text}: rgb{tuple(int(c) for c in entry.color)}")
    vis = _make_visualizer(o3d, scene, wh, visible=True, with_boxes=True, title="pc3d show")
    try:
        _apply_camera(o3d, vis, cam)
        _run_window(vis)
    finally:
        vis.destroy_window()


def show_image(img: np.ndarray, title: str = "pc3d show") -> None:
    """Show `uint8[H, W, 3]` `img` (e.g. a camera view) in an Open3D window until it is closed."""
    check_interactive_display()
    img = np.ascontiguousarray(img, dtype=np.uint8)
    o3d = import_open3d()
    vis = o3d.visualization.Visualizer()
    if not create_window(vis, title, img.shape[1], img.shape[0], True):
        raise DisplayUnavailableError(offscreen_help())
    try:
        vis.add_geometry(o3d.geometry.Image(img))
        _run_window(vis)
    finally:
        vis.destroy_window()


def _run_window(vis: Any) -> None:
    """Hand control to the user until the window is closed (a seam for tests)."""
    vis.run()


# ------------------------------------------------------------------ camera image


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
    """Project 3D boxes onto a camera image; the drawn image as `uint8[H, W, 3]`.

    Args:
        img: `uint8[H, W, 3]` or an image file.
        boxes, pred: as in `render`; converted to camera coordinates (LiDAR boxes through
            `lidar2cam`).
        projection: `[3, 4]` (or 4x4) rectified camera -> pixel matrix (KITTI `P2`).
        mode: default coordinate system of plain arrays (camera).
    """
    proj = image.check_projection(projection, "projection (P2)")
    if out is not None:
        _check_png_path(out)
    base = image.load_image(str(img)) if isinstance(img, (str, Path)) else np.asarray(img, dtype=np.uint8)
    if base.ndim != 3 or base.shape[2] != 3:
        raise ShapeError(f"image: expected shape (H, W, 3), got {base.shape}")
    # Plain arrays are taken as camera boxes unless `mode` says otherwise.
    default_mode = _mode_name(mode or "camera")
    gt = None if boxes is None else as_box_set(boxes, default_mode, class_names, "boxes")
    pr = None if pred is None else as_box_set(pred, default_mode, class_names, "pred")
    scene = build_scene(
        np.zeros((0, 3)), gt, pr, mode="camera", lidar2cam=lidar2cam, score_thr=score_thr, class_names=class_names
    )
    pix, visible = image.project_segments(scene.segments, proj)
    width = max(2, round(min(base.shape[:2]) / 250))
    drawn = image.draw_segments(base, pix[visible], scene.segment_colors[visible], width=width)
    if labels and len(scene.corners):
        pts = scene.corners.reshape(-1, 3)
        homo = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ proj.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = homo[:, :2] / homo[:, 2:3]
        front = (pts[:, 2].reshape(-1, 8) > image.NEAR_PLANE).all(axis=1)
        drawn = _draw_labels(drawn, uv.reshape(-1, 8, 2), front, scene)
    if legend:
        drawn = image.draw_legend(drawn, scene.legend, scene.legend_title)
    if out is not None:
        save_png(drawn, out)
    return drawn
