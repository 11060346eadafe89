"""Point colours: by height, by intensity (with the colour scale they follow), or by class.

Height and intensity follow `geometry.ramp_colors` between the 2nd and 98th percentiles of the
values; the `ColorScale` returned with them says which values the ramp's ends stand for, so a
colour bar can be drawn next to the picture. Class colours come either from the box holding a
point or from a per-point label array (e.g. a segmentation's output), with one legend row per
class present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.vis import geometry, image
from pc3d.vis.camera import frame_axes

if TYPE_CHECKING:
    from pc3d.vis.scene import BoxSet

COLOR_BY = ("height", "intensity", "label")


@dataclass(frozen=True)
class ColorScale:
    """What the point ramp stands for: `lo` and `hi` are the values at its ends.

    Attributes:
        title: what is coloured, with its unit (`"height (m)"`, `"intensity"`).
        lo, hi: the values drawn in the ramp's first and last colour (values beyond are clamped).
    """

    title: str
    lo: float
    hi: float

    def colors(self, samples: int) -> np.ndarray:
        """`uint8[samples, 3]`: the ramp from `lo` to `hi`, exactly as points of those values are drawn."""
        return geometry.ramp_colors(np.linspace(self.lo, self.hi, samples), self.lo, self.hi)


def resolve_color_by(color_by: str | None, point_labels: object) -> str:
    """`color_by` checked, or its default: `label` with per-point labels, else `height`.

    Raises:
        FormatError: an unknown choice, or per-point labels with another choice than `label`.
    """
    if color_by is None:
        return "height" if point_labels is None else "label"
    if color_by not in COLOR_BY:
        raise FormatError(f"unknown color_by {color_by!r}; valid choices are {', '.join(COLOR_BY)}")
    if point_labels is not None and color_by != "label":
        raise FormatError(
            f"per-point labels colour the points by class; they go with color_by 'label', not {color_by!r}"
        )
    return color_by


def ramp_point_colors(pts: np.ndarray, mode: str, color_by: str) -> tuple[np.ndarray, ColorScale]:
    """Colours `uint8[N, 3]` of `pts` `[N, 3+C]` by `height` (frame's up axis) or `intensity` (4th column).

    NaN/inf intensities get the neutral grey.

    Returns:
        The colours and the scale they follow.

    Raises:
        ShapeError: `intensity` without a 4th column.
    """
    if color_by == "height":
        _, _, up = frame_axes(mode)
        values, title = pts[:, :3] @ up, "height (m)"
    else:
        if pts.shape[1] < 4:
            raise ShapeError(
                f"color_by='intensity' needs a 4th point column (intensity); the cloud has {pts.shape[1]} columns"
            )
        values, title = pts[:, 3], "intensity"
    lo, hi = geometry.ramp_bounds(values)
    return geometry.ramp_colors(values, lo, hi), ColorScale(title, lo, hi)


def point_colors_by(
    pts: np.ndarray, mode: str, color_by: str, boxes: BoxSet, box_color: np.ndarray
) -> np.ndarray:
    """`uint8[N, 3]` colours of `pts` `[N, 3+C]` in `mode`.

    Args:
        pts: the cloud, `float64[N, 3+C]`.
        mode: its coordinate system.
        color_by: `height` (along the frame's up axis), `intensity` (4th column; NaN/inf get
            the neutral grey), or `label`: a point takes the colour of the first box holding it
            (`box_color` `uint8[M, 3]`, one row per box of `boxes`), else grey.
        boxes: the boxes, in `mode`.
        box_color: their colours.

    Returns:
        The colours.

    Raises:
        ShapeError: `intensity` without a 4th column.
    """
    if color_by in ("height", "intensity"):
        return ramp_point_colors(pts, mode, color_by)[0]
    colors = np.tile(np.array(geometry.GREY_POINT, dtype=np.uint8), (len(pts), 1))
    if len(boxes):
        owner = boxes.structure().points_in_boxes(torch.as_tensor(pts[:, :3])).numpy()
        hit = owner >= 0
        colors[hit] = np.asarray(box_color, dtype=np.uint8).reshape(-1, 3)[owner[hit]]
    return colors


def check_point_labels(point_labels: object, num_points: int) -> np.ndarray:
    """`point_labels` as `int64[N]`, one class id per point (negative: ignored).

    Raises:
        FormatError: not integers.
        ShapeError: not 1-D, or another length than the cloud.
    """
    arr = np.asarray(
        point_labels.detach().cpu().numpy() if isinstance(point_labels, torch.Tensor) else point_labels
    )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise FormatError(f"point labels: expected integer class ids, got {arr.dtype}")
    if arr.ndim != 1 or len(arr) != num_points:
        raise ShapeError(
            f"point labels: expected one class id per point ({num_points}), got shape {arr.shape}"
        )
    return arr.astype(np.int64)


def point_class_legend(labels: np.ndarray, class_names: Sequence[str] | None) -> list[image.LegendEntry]:
    """One legend row per class id present in `labels` `int64[N]`: its name (or id) and point count."""
    ids, counts = np.unique(labels, return_counts=True)
    names = list(class_names) if class_names is not None else []
    palette = geometry.point_class_colors(ids)
    entries = []
    for cls, count, color in zip(ids.tolist(), counts.tolist(), palette, strict=True):
        name = names[cls] if 0 <= cls < len(names) else ("ignored" if cls < 0 else f"class {cls}")
        entries.append(
            image.LegendEntry(f"{name} ({count} pts)", (int(color[0]), int(color[1]), int(color[2])))
        )
    return entries


__all__ = [
    "COLOR_BY",
    "ColorScale",
    "check_point_labels",
    "point_class_legend",
    "point_colors_by",
    "ramp_point_colors",
    "resolve_color_by",
]
