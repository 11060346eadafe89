"""Drawing on images with numpy and PIL: legend, box labels, scale bar, and the camera view.

The camera view projects 3D boxes onto a camera image with a 3x4 projection matrix (KITTI's `P2`
for boxes in rectified camera coordinates). Box edges crossing the camera plane are clipped at a
near plane, so a box partly behind the camera still draws its visible part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.vis.layout import place_labels

try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError as _err:  # pillow ships with open3d's usual installs, but say so if it is gone
    raise MissingDependencyError(
        f"pc3d.vis needs pillow to write PNGs: pip install pillow ({_err})"
    ) from _err

# Closest depth (metres) at which camera-view edges are kept; nearer parts are clipped.
NEAR_PLANE = 0.1
TEXT_COLOR = (235, 235, 240)
PANEL_COLOR = (0, 0, 0, 170)


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: a colour swatch and its text (e.g. `"GT Car (3)"`)."""

    text: str
    color: tuple[int, int, int]


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at `size` pixels (its bitmap font when FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):
        # Pillow without FreeType (or < 10.1) only has the fixed-size bitmap font.
        return ImageFont.load_default()


def font_size_for(height: int) -> int:
    """Legend/label font size for an image `height` pixels tall."""
    return max(11, min(28, round(height / 38)))


def _legend_lines(entries: Sequence[LegendEntry], title: str | None) -> list[str]:
    return ([title] if title else []) + [e.text for e in entries]


def legend_rect(
    shape: tuple[int, ...], entries: Sequence[LegendEntry], title: str | None = None
) -> tuple[int, int, int, int] | None:
    """The pixels `(x0, y0, x1, y1)` the legend panel of an image of `shape` covers (None: no legend)."""
    lines = _legend_lines(entries, title)
    if not lines:
        return None
    size = font_size_for(shape[0])
    fnt = font(size)
    pad, row = size // 2, round(size * 1.35)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(measure.textlength(line, font=fnt) for line in lines)
    return pad, pad, pad + int(pad * 3 + size + text_w), pad + int(pad * 2 + row * len(lines))


def draw_legend(image: np.ndarray, entries: Sequence[LegendEntry], title: str | None = None) -> np.ndarray:
    """`image` `uint8[H, W, 3]` with a legend panel in its top-left corner (a new array)."""
    rect = legend_rect(image.shape, entries, title)
    if rect is None:
        return image
    pil = Image.fromarray(image).convert("RGBA")
    overlay = Image.new("RGBA", pil.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = font_size_for(image.shape[0])
    fnt = font(size)
    pad, row = size // 2, round(size * 1.35)
    swatch = size
    draw.rectangle(rect, fill=PANEL_COLOR)
    y = pad * 2
    if title:
        draw.text((pad * 2, y), title, font=fnt, fill=TEXT_COLOR)
        y += row
    for entry in entries:
        top = y + (row - swatch) // 2 - 1
        draw.rectangle([pad * 2, top, pad * 2 + swatch, top + swatch], fill=tuple(entry.color))
        draw.text((pad * 3 + swatch, y), entry.text, font=fnt, fill=TEXT_COLOR)
        y += row
    return np.asarray(Image.alpha_composite(pil, overlay).convert("RGB"))


def label_font_size(height: int) -> int:
    """Font size of box labels in an image `height` pixels tall (a little below the legend's)."""
    return max(10, font_size_for(height) - 2)


def label_rects(
    shape: tuple[int, ...], anchors: np.ndarray, texts: Sequence[str], avoid: np.ndarray | None = None
) -> np.ndarray:
    """Where `draw_texts` puts each text (`float64[K, 4]`, NaN rows: not drawn), none covering another.

    Args:
        shape: the image's shape `(H, W, ...)`.
        anchors: `[K, 2]` pixels each text belongs to; it is centred just above it when that spot is free.
        texts: the `K` texts.
        avoid: `[R, 4]` rectangles to keep free (see `pc3d.vis.layout.place_labels`).
    """
    fnt = font(label_font_size(shape[0]))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), text, font=fnt) for text in texts]
    sizes = np.array([[r - left + 4, b - top + 4] for left, top, r, b in boxes], dtype=np.float64).reshape(
        -1, 2
    )
    return place_labels(
        np.asarray(anchors, dtype=np.float64).reshape(-1, 2), sizes, (shape[1], shape[0]), avoid
    )


def draw_texts(
    image: np.ndarray,
    anchors: np.ndarray,
    texts: Sequence[str],
    colors: np.ndarray,
    avoid: np.ndarray | None = None,
) -> np.ndarray:
    """`image` with `texts[i]` drawn near pixel `anchors[i]` (`[K, 2]`) on a dark backing (`label_rects`)."""
    if len(texts) == 0:
        return image
    rects = label_rects(image.shape, anchors, texts, avoid)
    pil = Image.fromarray(image).convert("RGBA")
    overlay = Image.new("RGBA", pil.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    fnt = font(label_font_size(image.shape[0]))
    # One call per label: text layout has no vectorised form, and labels are opt-in and few.
    for rect, text, color in zip(rects, texts, colors, strict=True):
        if not np.isfinite(rect).all():
            continue
        x0, y0, x1, y1 = (int(v) for v in rect)
        left, top, _, _ = draw.textbbox((0, 0), text, font=fnt)
        draw.rectangle([x0, y0, x1, y1], fill=(0, 0, 0, 150))
        draw.text((x0 + 2 - left, y0 + 2 - top), text, font=fnt, fill=tuple(int(c) for c in color))
    return np.asarray(Image.alpha_composite(pil, overlay).convert("RGB"))


def nice_length(metres: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above `metres` (for a scale bar)."""
    exp = np.floor(np.log10(max(metres, 1e-6)))
    for step in (5.0, 2.0, 1.0):
        if step * 10**exp <= metres:
            return float(step * 10**exp)
    return float(10**exp)


def _scale_bar_layout(
    shape: tuple[int, ...], pixels_per_metre: float
) -> tuple[float, int, int, int, int, int]:
    """Metres shown, bar length, left, baseline, bar height and font size of the scale bar."""
    h, w = shape[:2]
    metres = nice_length(w / 6.0 / pixels_per_metre)
    size = font_size_for(h)
    return metres, int(round(metres * pixels_per_metre)), size, h - size * 2, max(2, size // 5), size


def scale_bar_rect(shape: tuple[int, ...], pixels_per_metre: float) -> tuple[int, int, int, int] | None:
    """The pixels `(x0, y0, x1, y1)` `draw_scale_bar` covers (None: it draws nothing)."""
    if not np.isfinite(pixels_per_metre) or pixels_per_metre <= 0:
        return None
    _, length, x0, y0, bar_h, size = _scale_bar_layout(shape, pixels_per_metre)
    pad = size // 2
    return x0 - pad, y0 - size - 4 - pad, x0 + length + pad, y0 + bar_h + pad


def draw_scale_bar(image: np.ndarray, pixels_per_metre: float) -> np.ndarray:
    """`image` with a metric scale bar in its bottom-left corner (about a sixth of the width)."""
    rect = scale_bar_rect(image.shape, pixels_per_metre)
    if rect is None:
        return image
    metres, length, x0, y0, bar_h, size = _scale_bar_layout(image.shape, pixels_per_metre)
    pil = Image.fromarray(image).convert("RGBA")
    overlay = Image.new("RGBA", pil.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle(rect, fill=PANEL_COLOR)
    draw.rectangle([x0, y0, x0 + length, y0 + bar_h], fill=TEXT_COLOR)
    draw.text((x0, y0 - size - 4), f"{metres:g} m", font=font(size), fill=TEXT_COLOR)
    return np.asarray(Image.alpha_composite(pil, overlay).convert("RGB"))


def check_projection(matrix: object, what: str = "projection matrix") -> np.ndarray:
    """`matrix` as `float64[3, 4]` (a 4x4 loses its last row); `ShapeError` otherwise."""
    mat = np.asarray(matrix, dtype=np.float64)
    if mat.shape == (4, 4):
        mat = mat[:3]
    if mat.shape != (3, 4):
        raise ShapeError(f"{what}: expected a 3x4 or 4x4 matrix, got shape {mat.shape}")
    if not np.isfinite(mat).all():
        raise FormatError(f"{what}: holds NaN or infinite values")
    return mat


def project_segments(segments: np.ndarray, projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project camera-frame segments `[S, 2, 3]` with `projection` `[3, 4]` into pixels.

    Returns `float64[S, 2, 2]` pixel end points and `bool[S]`, False for segments wholly behind
    the near plane; segments crossing it are cut at it first.
    """
    seg = np.asarray(segments, dtype=np.float64)
    if seg.ndim != 3 or seg.shape[1:] != (2, 3):
        raise ShapeError(f"segments: expected shape (S, 2, 3), got {seg.shape}")
    a, b = seg[:, 0], seg[:, 1]
    za, zb = a[:, 2], b[:, 2]
    visible = (za > NEAR_PLANE) | (zb > NEAR_PLANE)
    # Move the end that is behind the near plane onto it, along the segment.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(np.abs(zb - za) > 1e-12, (NEAR_PLANE - za) / (zb - za), 0.0)
    cut = a + t[:, None] * (b - a)
    a = np.where((za < NEAR_PLANE)[:, None], cut, a)
    b = np.where((zb < NEAR_PLANE)[:, None], cut, b)
    ends = np.stack([a, b], axis=1)  # [S, 2, 3]
    homo = np.concatenate([ends, np.ones(ends.shape[:2] + (1,))], axis=-1) @ projection.T
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = homo[..., :2] / homo[..., 2:3]
    return pix, visible & np.isfinite(pix).all(axis=(1, 2))


def clip_segments(
    segments: np.ndarray, lo: tuple[float, float], hi: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Clip 2D segments `[S, 2, 2]` to the box `lo..hi` (Liang-Barsky, vectorised).

    Returns the clipped `float64[S, 2, 2]` and `bool[S]`, False for segments wholly outside.
    """
    seg = np.asarray(segments, dtype=np.float64)
    p0, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    t0, t1 = np.zeros(len(seg)), np.ones(len(seg))
    keep = np.ones(len(seg), dtype=bool)
    for axis in (0, 1):
        for p, q in ((-d[:, axis], p0[:, axis] - lo[axis]), (d[:, axis], hi[axis] - p0[:, axis])):
            parallel = np.abs(p) < 1e-12
            keep &= ~(parallel & (q < 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(parallel, 0.0, q / np.where(parallel, 1.0, p))
            t0 = np.where(~parallel & (p < 0), np.maximum(t0, r), t0)
            t1 = np.where(~parallel & (p > 0), np.minimum(t1, r), t1)
    keep &= t0 <= t1
    clipped = np.stack([p0 + t0[:, None] * d, p0 + t1[:, None] * d], axis=1)
    return clipped, keep


def draw_segments(
    image: np.ndarray, segments_px: np.ndarray, colors: np.ndarray, width: int = 2
) -> np.ndarray:
    """`image` `uint8[H, W, 3]` with pixel segments `[S, 2, 2]` drawn `width` pixels wide (a copy).

    Rasterised in numpy: each segment, clipped to the image, is sampled twice per pixel of its
    length and every sample stamps a `width` x `width` square; later segments paint over earlier
    ones. `colors` is `uint8[S, 3]`.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    segments = np.asarray(segments_px, dtype=np.float64).reshape(-1, 2, 2)
    seg, keep = clip_segments(segments, (-width, -width), (w + width, h + width))
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)[keep]
    seg = seg[keep]
    if len(seg) == 0:
        return out
    # Variable sample counts per segment, laid out flat: memory follows the drawn length.
    counts = np.ceil(np.linalg.norm(seg[:, 1] - seg[:, 0], axis=-1) * 2.0).astype(np.int64) + 1
    owner = np.repeat(np.arange(len(seg)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = (np.arange(owner.size) - first) / np.maximum(counts[owner] - 1, 1)
    pts = seg[owner, 0] + t[:, None] * (seg[owner, 1] - seg[owner, 0])  # [T, 2]
    offsets = np.arange(width) - (width - 1) // 2
    dx, dy = np.meshgrid(offsets, offsets, indexing="xy")
    cols = (np.rint(pts[:, 0]).astype(np.int64)[:, None] + dx.reshape(-1)).reshape(-1)
    rows = (np.rint(pts[:, 1]).astype(np.int64)[:, None] + dy.reshape(-1)).reshape(-1)
    owner = np.repeat(owner, dx.size)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    out[rows[inside], cols[inside]] = colors[owner[inside]]
    return out


def load_image(path: str) -> np.ndarray:
    """An image file as `uint8[H, W, 3]` RGB; `FormatError` naming the file when unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise FormatError(f"{path}: not a readable image ({err})") from None
