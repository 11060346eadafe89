"""Placing text labels on a picture so that none covers another (or the legend, or the bars).

Each label wants to sit centred just above its anchor (the top of its box). Labels are placed
one after the other, in the order given (ground truth before predictions): a label takes the
first free spot among candidates that move it up, then down, in steps of its own height, then
sideways. A ground-truth box and a prediction on the same spot therefore get stacked labels.
Rectangles are `(x0, y0, x1, y1)` in pixels, both corners inclusive (as PIL draws them).
"""

from __future__ import annotations

import numpy as np

# Pixels kept free between two labels.
GAP = 2


def overlaps(rects: np.ndarray, others: np.ndarray, gap: int = 0) -> np.ndarray:
    """`bool[A, B]`: whether rectangle `rects[a]` and `others[b]` (`[A, 4]`, `[B, 4]`) share a pixel.

    With `gap`, rectangles closer than `gap` pixels also count as overlapping.
    """
    a = np.asarray(rects, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(others, dtype=np.float64).reshape(1, -1, 4)
    apart_x = (a[..., 2] + gap < b[..., 0]) | (b[..., 2] + gap < a[..., 0])
    apart_y = (a[..., 3] + gap < b[..., 1]) | (b[..., 3] + gap < a[..., 1])
    return ~(apart_x | apart_y)


def _candidates(u: float, v: float, w: float, h: float, steps: int) -> np.ndarray:
    """Top-left corners `[C, 2]` to try for a `w` x `h` label anchored at (u, v), best first."""
    step = h + GAP + 1
    vertical = np.concatenate(
        [[0.0], np.stack([-np.arange(1, steps + 1), np.arange(1, steps + 1)], 1).reshape(-1)]
    )
    horizontal = np.array([0.0, 1.0, -1.0]) * (w + GAP + 1)
    dy, dx = np.meshgrid(vertical * step, horizontal, indexing="xy")  # [3, 2*steps+1], row by row
    x0 = u - w / 2.0 + dx.reshape(-1)
    y0 = v - h - 2.0 + dy.reshape(-1)
    return np.stack([x0, y0], axis=1)


def place_labels(
    anchors: np.ndarray, sizes: np.ndarray, image_size: tuple[int, int], avoid: np.ndarray | None = None
) -> np.ndarray:
    """Rectangles `float64[K, 4]` for labels of `sizes` `[K, 2]` (w, h) anchored at `anchors` `[K, 2]`.

    Args:
        anchors: pixel (column, row) each label belongs to, e.g. the top centre of its box.
        sizes: each label's width and height in pixels (its backing included).
        image_size: `(width, height)`; labels are kept inside the image.
        avoid: `[R, 4]` rectangles no label may cover (legend, colour bar, scale bar).

    Returns:
        One rectangle per label, no two sharing a pixel while there is room; rows of NaN for
        labels whose anchor lies outside the image (they are not drawn). When every candidate
        spot is taken, the one overlapping the fewest pixels is used.
    """
    anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    width, height = image_size
    rects = np.full((len(anchors), 4), np.nan)
    taken = np.zeros((0, 4)) if avoid is None else np.asarray(avoid, dtype=np.float64).reshape(-1, 4)
    inside = np.isfinite(anchors).all(axis=1) & (anchors[:, 0] >= 0) & (anchors[:, 0] < width)
    inside &= (anchors[:, 1] >= 0) & (anchors[:, 1] < height)
    steps = len(anchors) + len(taken) + 1
    # One pass per label (labels are few and opt-in); each pass tests all its candidates at once.
    for k in np.flatnonzero(inside):
        w, h = sizes[k]
        corner = _candidates(anchors[k, 0], anchors[k, 1], w, h, steps)
        corner[:, 0] = np.clip(corner[:, 0], 0.0, max(0.0, width - 1 - w))
        corner[:, 1] = np.clip(corner[:, 1], 0.0, max(0.0, height - 1 - h))
        boxes = np.concatenate([corner, corner + [w, h]], axis=1)
        if len(taken):
            hits = overlaps(boxes, taken, GAP)
            free = ~hits.any(axis=1)
            best = int(np.argmax(free)) if free.any() else int(np.argmin(_overlap_area(boxes, taken)))
        else:
            best = 0
        rects[k] = boxes[best]
        taken = np.concatenate([taken, boxes[best : best + 1]])
    return rects


def _overlap_area(rects: np.ndarray, others: np.ndarray) -> np.ndarray:
    """`float64[A]`: pixels of each rectangle covered by `others` (summed over them)."""
    a, b = rects[:, None, :], others[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    return np.asarray((w * h).sum(axis=1))


__all__ = ["GAP", "overlaps", "place_labels"]
