"""What is drawn over a rendered frame: box wireframes, box labels, legend, scale bar, colour bar.

The boxes are rasterised here rather than drawn as Open3D line sets: OpenGL line widths above
1 px are honoured by Mesa's EGL context but not by its GLX one (Xvfb), nor by many desktop
drivers, so lines drawn by Open3D would change thickness with the machine. Drawn last, the boxes
also stay visible over dense points.

Box labels are placed last, around the legend, the scale bar and the colour bar and around each
other (`pc3d.vis.layout`), so that a ground-truth box and a prediction on the same spot both
keep a readable label.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pc3d.vis import geometry, image
from pc3d.vis.backend import default_line_width
from pc3d.vis.camera import Camera, Region, frame_axes
from pc3d.vis.coloring import ColorScale
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


def box_label_anchors(corners_px: np.ndarray) -> np.ndarray:
    """`float64[M, 2]`: where each box's label belongs, the top centre of its projected corners `[M, 8, 2]`."""
    return np.stack([corners_px[..., 0].mean(axis=1), corners_px[..., 1].min(axis=1)], axis=1)


def draw_box_labels(
    img: np.ndarray, corners_px: np.ndarray, front: np.ndarray, scene: Scene, avoid: np.ndarray | None = None
) -> np.ndarray:
    """Each box's text above its projected corners `[M, 8, 2]` (boxes in `front` only), none covering
    another or the rectangles in `avoid` `[R, 4]`."""
    texts = [t for t, f in zip(scene.box_text, front, strict=True) if f]
    return image.draw_texts(img, box_label_anchors(corners_px)[front], texts, scene.box_color[front], avoid)


def box_label_rects(
    shape: tuple[int, ...], scene: Scene, cam: Camera, avoid: np.ndarray | None = None
) -> np.ndarray:
    """Where `draw_overlays` puts the box labels: `float64[M, 4]` (x0, y0, x1, y1), NaN rows for
    boxes whose label is not drawn (behind the camera or off the picture)."""
    rects = np.full((len(scene.corners), 4), np.nan)
    if len(scene.corners) == 0:
        return rects
    uv, depth = cam.project(scene.corners.reshape(-1, 3))
    front = np.asarray((depth.reshape(-1, 8) > cam.z_near).all(axis=1))
    texts = [t for t, f in zip(scene.box_text, front, strict=True) if f]
    rects[front] = image.label_rects(shape, box_label_anchors(uv.reshape(-1, 8, 2))[front], texts, avoid)
    return rects


def pixels_per_metre(cam: Camera, region: Region, mode: str) -> float:
    """Image scale of a bird's-eye view: pixels for one metre forward at the bottom of `region`."""
    # The view was fitted at the bottom of the scene: measure from the middle of the region there.
    fwd, left, up = frame_axes(mode)
    mid = sum(region.forward) / 2.0 * fwd + sum(region.left) / 2.0 * left + region.up[0] * up
    uv, _ = cam.project(np.stack([mid, mid + fwd]))
    return float(np.linalg.norm(uv[1] - uv[0]))


def _color_bar_layout(shape: tuple[int, ...], scale: ColorScale) -> dict[str, tuple[int, int]]:
    """Top-left corners of the colour bar's panel, title, bar and end values, and the panel's and bar's sizes."""
    h, w = shape[:2]
    size = image.font_size_for(h)
    fnt = image.font(size)
    pad = size // 2
    lo_text, hi_text = format_value(scale.lo), format_value(scale.hi)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_w, lo_w, hi_w = (int(measure.textlength(t, font=fnt)) for t in (scale.title, lo_text, hi_text))
    bar_w = max(title_w, lo_w + hi_w + size, min(w // 5, 320))
    bar_h = max(6, round(size * 0.8))
    panel = (bar_w + 2 * pad, 3 * pad + bar_h + 2 * (size + 4))
    x0, y0 = w - pad - panel[0], h - pad - panel[1]
    bar_y = y0 + pad + size + 4
    return {
        "panel": (x0, y0), "panel_size": panel, "title": (x0 + pad, y0 + pad), "bar": (x0 + pad, bar_y),
        "bar_size": (bar_w, bar_h), "lo": (x0 + pad, bar_y + bar_h + pad),
        "hi": (x0 + pad + bar_w - hi_w, bar_y + bar_h + pad),
    }  # fmt: skip


def format_value(value: float) -> str:
    """A colour-bar end value with three significant digits (`-2.56`, `0.99`, `1.2e+03`)."""
    return f"{value:.3g}" if np.isfinite(value) else "n/a"


def color_bar_rect(shape: tuple[int, ...], scale: ColorScale) -> tuple[int, int, int, int]:
    """The pixels `(x0, y0, x1, y1)` the colour bar of `scale` covers in an image of `shape`."""
    layout = _color_bar_layout(shape, scale)
    (x0, y0), (pw, ph) = layout["panel"], layout["panel_size"]
    return x0, y0, x0 + pw, y0 + ph


def color_bar_pixels(shape: tuple[int, ...], scale: ColorScale) -> tuple[int, int, int, int]:
    """The ramp's own pixels `(x0, y0, x1, y1)` (inclusive) inside the colour bar: column `x0 + i`
    holds `scale.colors(x1 - x0 + 1)[i]` on every row from `y0` to `y1`."""
    layout = _color_bar_layout(shape, scale)
    (x0, y0), (bw, bh) = layout["bar"], layout["bar_size"]
    return x0, y0, x0 + bw - 1, y0 + bh - 1


def draw_color_bar(img: np.ndarray, scale: ColorScale) -> np.ndarray:
    """`img` with a colour bar in its bottom-right corner: the point ramp, its title and its end values."""
    layout = _color_bar_layout(img.shape, scale)
    size = image.font_size_for(img.shape[0])
    fnt = image.font(size)
    pil = Image.fromarray(img).convert("RGBA")
    overlay = Image.new("RGBA", pil.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle(color_bar_rect(img.shape, scale), fill=image.PANEL_COLOR)
    draw.text(layout["title"], scale.title, font=fnt, fill=image.TEXT_COLOR)
    draw.text(layout["lo"], format_value(scale.lo), font=fnt, fill=image.TEXT_COLOR)
    draw.text(layout["hi"], format_value(scale.hi), font=fnt, fill=image.TEXT_COLOR)
    out = np.array(Image.alpha_composite(pil, overlay).convert("RGB"))
    # The ramp itself is painted opaque, in exactly the colours the points of those values have.
    x0, y0, x1, y1 = color_bar_pixels(img.shape, scale)
    out[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = scale.colors(x1 - x0 + 1)[max(0, -x0) :][None]
    return out


def overlay_rects(
    shape: tuple[int, ...],
    scene: Scene,
    cam: Camera,
    region: Region,
    view: str,
    legend: bool,
    color_bar: bool,
) -> np.ndarray:
    """`float64[R, 4]`: the legend, scale bar and colour bar rectangles `draw_overlays` draws."""
    rects = []
    if legend:
        rects.append(image.legend_rect(shape, scene.legend, scene.legend_title))
        if view == "bev":
            rects.append(image.scale_bar_rect(shape, pixels_per_metre(cam, region, scene.mode)))
        if color_bar and scene.color_scale is not None:
            rects.append(color_bar_rect(shape, scene.color_scale))
    return np.array([r for r in rects if r is not None], dtype=np.float64).reshape(-1, 4)


def draw_overlays(
    img: np.ndarray,
    scene: Scene,
    cam: Camera,
    region: Region,
    view: str,
    labels: bool,
    legend: bool,
    color_bar: bool = False,
) -> np.ndarray:
    """`img` with box `labels` and the `legend` (plus a scale bar in `bev`) drawn as asked.

    With `legend` and `color_bar`, a colour bar shows what the point colours stand for (when
    they follow the height/intensity ramp). Labels are placed around all of these.
    """
    avoid = overlay_rects(img.shape, scene, cam, region, view, legend, color_bar)
    if legend:
        img = image.draw_legend(img, scene.legend, scene.legend_title)
        if view == "bev":
            img = image.draw_scale_bar(img, pixels_per_metre(cam, region, scene.mode))
        if color_bar and scene.color_scale is not None:
            img = draw_color_bar(img, scene.color_scale)
    if labels and len(scene.corners):
        uv, depth = cam.project(scene.corners.reshape(-1, 3))
        front = np.asarray((depth.reshape(-1, 8) > cam.z_near).all(axis=1))
        img = draw_box_labels(img, uv.reshape(-1, 8, 2), front, scene, avoid)
    return img
