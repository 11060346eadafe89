"""Straightforward references the ops are checked against (shapely geometry, sequential NMS)."""

from __future__ import annotations

import numpy as np
import shapely
import torch
from torch import Tensor


def bev_polygons(bev: Tensor | np.ndarray) -> np.ndarray:
    """Shapely rectangles of BEV boxes `[N, 5]` (x, y, x_size, y_size, yaw), in float64."""
    b = np.asarray(bev, dtype=np.float64)
    c, s = np.cos(b[:, 4]), np.sin(b[:, 4])
    hx, hy = b[:, 2] / 2, b[:, 3] / 2
    ux = np.stack([hx, -hx, -hx, hx], 1)
    uy = np.stack([hy, hy, -hy, -hy], 1)
    x = b[:, :1] + ux * c[:, None] - uy * s[:, None]
    y = b[:, 1:2] + ux * s[:, None] + uy * c[:, None]
    return shapely.polygons(np.stack([x, y], -1))


# GEOS's floating-point overlay sometimes returns an empty intersection for two nearly coincident
# rectangles (e.g. the same box described with yaw + pi: about 1 pair in 500 of those here); with
# snap rounding to a 1e-12 grid it is robust, at a cost of ~1e-12 in area.
GRID = 1e-12


def shapely_area(a_bev: np.ndarray, b_bev: np.ndarray) -> np.ndarray:
    """Aligned intersection areas of `[P, 5]` BEV boxes with shapely (snap-rounded overlay)."""
    return shapely.area(shapely.intersection(bev_polygons(a_bev), bev_polygons(b_bev), grid_size=GRID))


def shapely_iou_bev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Aligned BEV IoU of `[P, 5]` boxes with shapely (0 for two empty boxes)."""
    inter = shapely_area(a, b)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def shapely_iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Aligned 3D IoU of `[P, 7]` z-up bottom-centre boxes with shapely."""
    inter = shapely_area(a[:, [0, 1, 3, 4, 6]], b[:, [0, 1, 3, 4, 6]])
    h = np.clip(np.minimum(a[:, 2] + a[:, 5], b[:, 2] + b[:, 5]) - np.maximum(a[:, 2], b[:, 2]), 0, None)
    inter = inter * h
    union = a[:, 3] * a[:, 4] * a[:, 5] + b[:, 3] * b[:, 4] * b[:, 5] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_nms(
    scores: Tensor,
    suppresses: Tensor | np.ndarray,
    labels: Tensor | None = None,
    score_threshold: float | None = None,
    pre_max: int | None = None,
    post_max: int | None = None,
) -> Tensor:
    """The textbook sequential sweep: rank by score (stable), keep a box unless suppressed.

    `suppresses[i, j]` (`[N, N]` bool) says whether box i suppresses box j if i is kept first.
    """
    sup = np.asarray(suppresses, dtype=bool)
    if labels is not None:
        lab = np.asarray(labels)
        sup = sup & (lab[:, None] == lab[None, :])
    idx = torch.arange(scores.shape[0])
    if score_threshold is not None:
        idx = idx[scores > score_threshold]
    order = idx[torch.sort(scores[idx], descending=True, stable=True).indices]
    if pre_max is not None:
        order = order[:pre_max]
    taking_part = np.zeros(sup.shape[0], dtype=bool)
    taking_part[order.numpy()] = True
    suppressed = ~taking_part
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= sup[i]
    out = torch.tensor(keep, dtype=torch.long)
    return out if post_max is None else out[:post_max]


def dense_points_in_boxes(points: Tensor, boxes: Tensor) -> Tensor:
    """`[N, M]` mask by testing every pair (closed faces), float arithmetic as the op's."""
    offset = points[:, None, :3] - boxes[None, :, :3]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    u = offset[..., 0] * cos + offset[..., 1] * sin
    v = -offset[..., 0] * sin + offset[..., 1] * cos
    w = offset[..., 2]
    return (u.abs() <= boxes[:, 3] / 2) & (v.abs() <= boxes[:, 4] / 2) & (w >= 0) & (w <= boxes[:, 5])


def clustered_boxes(
    num: int, num_objects: int, generator: torch.Generator, spread: float = 0.8
) -> tuple[Tensor, Tensor]:
    """Detector-like LiDAR boxes `[num, 7]`: jittered copies around `num_objects` cars, and scores."""
    g = generator
    centres = torch.rand(num_objects, 2, generator=g) * torch.tensor([70.0, 80.0]) - torch.tensor([0.0, 40.0])
    heading = torch.rand(num_objects, generator=g) * 2 * torch.pi - torch.pi
    obj = torch.randint(0, num_objects, (num,), generator=g)
    xy = centres[obj] + torch.randn(num, 2, generator=g) * spread
    size = torch.tensor([3.9, 1.6]) * (0.8 + 0.4 * torch.rand(num, 2, generator=g))
    yaw = heading[obj] + torch.randn(num, generator=g) * 0.2
    z = -1.7 + 0.2 * torch.randn(num, 1, generator=g)
    h = 1.5 + 0.2 * torch.rand(num, 1, generator=g)
    boxes = torch.cat([xy, z, size, h, yaw[:, None]], dim=1)
    return boxes, torch.rand(num, generator=g)


class PairBlocks:
    """Pairs ``(a, b)`` of BEV boxes gathered in named blocks (random pairs, one kind of edge case
    per block), so a test can check each block and name the one that fails."""

    def __init__(self) -> None:
        self.blocks: dict[str, slice] = {}
        self._a: list[Tensor] = []
        self._b: list[Tensor] = []

    def add(self, name: str, a: Tensor, b: Tensor) -> None:
        """Append the block ``name``: ``a[i]`` pairs with ``b[i]`` (both ``Tensor[n, 5]``)."""
        start = sum(len(p) for p in self._a)
        self._a.append(a)
        self._b.append(b)
        self.blocks[name] = slice(start, start + len(a))

    def add_degenerate(self, boxes: Tensor, partner: Tensor, suffix: str = "") -> Tensor:
        """Append the blocks of boxes with no area, made from ``boxes`` (``Tensor[n, 5]``).

        ``zero_width{suffix}`` pairs ``boxes`` with their x size set to 0 with ``partner``;
        ``zero_size{suffix}`` pairs ``partner`` with ``boxes`` shrunk to points.

        Args:
            boxes: The boxes the degenerate ones are made from.
            partner: The boxes they are paired with.
            suffix: Appended to both block names.

        Returns:
            ``boxes`` shrunk to points.
        """
        zero_width = boxes.clone()
        zero_width[:, 2] = 0
        self.add(f"zero_width{suffix}", zero_width, partner)
        points = boxes.clone()
        points[:, 2:4] = 0
        self.add(f"zero_size{suffix}", partner, points)
        return points

    def pairs(self) -> tuple[Tensor, Tensor, dict[str, slice]]:
        """All ``a`` rows, all ``b`` rows and each block's rows."""
        return torch.cat(self._a), torch.cat(self._b), self.blocks
