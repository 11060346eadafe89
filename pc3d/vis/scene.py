"""Scene building: what `render`/`show` draw, validated, converted, filtered and coloured.

Inputs are recognised by type: a `BoxSet`, a `pc3d.structures` box object (`LiDARBoxes3D`, ...),
a `pc3d.io.BoxFile`, a mapping in the box-file layout, or a plain array/tensor; points as a
`pc3d.structures` points object (`LiDARPoints`, ...) or an array/tensor. Box corners come from
`Boxes3D.corners` (MMDetection3D's corner order), the one implementation of that geometry.
Boxes in another system than the cloud are converted, camera <-> LiDAR through `lidar2cam`
(for KITTI, `R0_rect @ Tr_velo_to_cam`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.io.boxes import BoxFile
from pc3d.structures import BasePoints, Boxes3D, BoxMode, box_class, convert_boxes
from pc3d.vis import geometry, image
from pc3d.vis.coloring import (
    COLOR_BY,
    ColorScale,
    check_point_labels,
    point_class_legend,
    point_colors_by,
    ramp_point_colors,
    resolve_color_by,
)


def mode_name(mode: object) -> str:
    """`mode` (a `BoxMode` or a string such as `"LiDAR"` or `"cam"`) as `lidar`/`camera`/`depth`.

    Raises:
        FormatError: not one of the three systems.
    """
    name = mode.value if isinstance(mode, BoxMode) else str(mode).strip().lower()
    name = {"cam": "camera"}.get(name, name)
    if name not in geometry.MODES:
        raise FormatError(f"unknown coordinate system {mode!r}; valid ones are lidar, camera, depth")
    return name


@dataclass
class BoxSet:
    """Boxes to draw with their class names and scores.

    Attributes:
        boxes: `float64[M, 7+C]` bottom-centre boxes in coordinate system `mode`.
        mode: `lidar`, `camera` or `depth`.
        labels: `M` class names, or None (all boxes get their set's first colour).
        scores: `float64[M]`, or None.

    Raises:
        ShapeError: boxes not `[M, 7+]`, or labels/scores of another length.
        FormatError: NaN/inf or negative sizes, or an unknown mode.
    """

    boxes: np.ndarray
    mode: str = "lidar"
    labels: list[str] | None = None
    scores: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        self.boxes = geometry.check_boxes(self.boxes)
        self.mode = mode_name(self.mode)
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

    def structure(self) -> Boxes3D:
        """The boxes as the `pc3d.structures` class of their mode (yaw and sizes only, no extras)."""
        return box_class(self.mode)(self.boxes[:, :7])

    def corners(self) -> np.ndarray:
        """Corners `float64[M, 8, 3]` in MMDetection3D's order (`Boxes3D.corners`)."""
        return self.structure().corners.numpy().astype(np.float64)


def as_box_set(
    obj: object, mode: str | None = None, class_names: Sequence[str] | None = None, what: str = "boxes"
) -> BoxSet:
    """Coerce `obj` to a `BoxSet`.

    Args:
        obj: a `BoxSet`; a `pc3d.structures.Boxes3D` (its own mode); a `pc3d.io.BoxFile` or a
            mapping in the box-file layout (`{"mode", "boxes", "labels", "scores"}`); or an
            array/tensor `[M, 7+C]`.
        mode: the system of inputs that do not state one (default LiDAR).
        class_names: names for integer labels.
        what: how error messages name the input (`boxes`, `pred`).

    Returns:
        The boxes as a `BoxSet`.

    Raises:
        FormatError: a mapping without `boxes`, an unknown mode, a label index out of range.
        ShapeError: boxes not `[M, 7+C]`.
    """
    if isinstance(obj, BoxSet):
        return obj
    labels: Any = None
    scores: Any = None
    stated: object = None
    boxes: object = obj
    if isinstance(obj, Mapping):
        unknown = set(obj) - {"mode", "boxes", "labels", "scores", "columns", "meta"}
        if "boxes" not in obj or unknown:
            raise FormatError(
                f"{what}: a box mapping needs the key 'boxes' (and optionally mode, labels, scores); "
                f"got keys {sorted(obj)}"
            )
        boxes, stated, labels, scores = obj["boxes"], obj.get("mode"), obj.get("labels"), obj.get("scores")
    elif isinstance(obj, BoxFile):
        boxes, stated, labels, scores = obj.boxes, obj.mode, obj.labels, obj.scores
    if isinstance(boxes, Boxes3D):
        stated = stated or boxes.mode
        boxes = boxes.tensor
    box_mode = mode_name(stated if stated is not None else (mode or "lidar"))
    if labels is not None:
        labels = _label_names(np.asarray(_to_numpy(labels)).reshape(-1).tolist(), class_names, what)
    scores = None if scores is None else _to_numpy(scores)
    return BoxSet(geometry.check_boxes(_to_numpy(boxes), what), box_mode, labels, scores)


def _to_numpy(value: object) -> object:
    """Tensors to numpy (anything else unchanged)."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


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
    """`points` (array, tensor or `BasePoints`) as `float64[N, 3+C]`.

    Raises:
        ShapeError: not `[N, 3+]`.
        FormatError: not numeric, or NaN/inf coordinates (naming `what` and the first bad row).
    """
    data = points.tensor if isinstance(points, BasePoints) else points
    try:
        arr = np.asarray(_to_numpy(data), dtype=np.float64)
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

    Raises:
        FormatError: camera <-> LiDAR without `lidar2cam`.
        ShapeError: `lidar2cam` not 4x4 or 3x4.
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
    converted = np.asarray(convert_boxes(boxes.boxes, boxes.mode, mode, rt_mat=rt_mat), dtype=np.float64)
    return BoxSet(converted, mode, boxes.labels, boxes.scores)


@dataclass(frozen=True)
class Scene:
    """Everything to draw, in the cloud's frame, after conversion, filtering and colouring.

    Attributes:
        points: `float64[N, 3+C]`; `point_colors` `uint8[N, 3]`.
        mode: the cloud's coordinate system, which everything is drawn in.
        gt, pred: the boxes after conversion (and the score threshold for `pred`).
        segments: `float64[S, 2, 3]` wireframe segments (`geometry.SEGMENTS_PER_BOX` per box,
            GT first, then predictions) with colours `segment_colors` `uint8[S, 3]`.
        corners: `float64[M, 8, 3]` in the same box order; `box_text`/`box_color` each box's
            label text and colour.
        legend, legend_title: the legend rows and the line above them.
        color_scale: what the point colours stand for when they follow the height/intensity
            ramp (drawn as a colour bar), else None.
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
    color_scale: ColorScale | None = None


def build_scene(
    points: object,
    boxes: object = None,
    pred: object = None,
    *,
    mode: str | None = None,
    lidar2cam: np.ndarray | None = None,
    color_by: str | None = None,
    score_thr: float = 0.0,
    class_names: Sequence[str] | None = None,
    point_labels: object = None,
) -> Scene:
    """Validate and prepare everything `render`/`show` draw (see `pc3d.vis.render` for the arguments).

    Returns:
        The `Scene`, everything in the cloud's system.

    Raises:
        FormatError: a points structure of another system than `mode`, an unknown `color_by`,
            or bad boxes/points.
        ShapeError: boxes or points of the wrong shape.
    """
    mode = _cloud_mode(points, mode)
    color_by = resolve_color_by(color_by, point_labels)
    pts = check_points(points)
    empty = BoxSet(np.zeros((0, 7)), mode, [], np.zeros(0))
    gt = (
        empty
        if boxes is None
        else convert_box_set(as_box_set(boxes, mode, class_names, "boxes"), mode, lidar2cam)
    )
    pr = (
        empty
        if pred is None
        else convert_box_set(as_box_set(pred, mode, class_names, "pred"), mode, lidar2cam)
    )
    if pr.scores is not None and score_thr > 0:
        pr = pr.select(pr.scores >= score_thr)

    gt_names = gt.labels if gt.labels is not None else [geometry.UNLABELLED] * len(gt)
    pr_names = pr.labels if pr.labels is not None else [geometry.UNLABELLED] * len(pr)
    gt_colors, pr_colors = geometry.box_colors(gt_names, "gt"), geometry.box_colors(pr_names, "pred")
    both = BoxSet(np.concatenate([gt.boxes[:, :7], pr.boxes[:, :7]]), mode)
    corners = both.corners()
    box_color = np.concatenate([gt_colors, pr_colors]).reshape(-1, 3)
    segments = geometry.wireframe_segments(corners).reshape(-1, 2, 3)
    segment_colors = np.repeat(box_color, geometry.SEGMENTS_PER_BOX, axis=0)

    pr_scores = pr.scores if pr.scores is not None else np.full(len(pr), np.nan)
    box_text = [n or "box" for n in gt_names] + [
        f"{n or 'pred'} {s:.2f}" if np.isfinite(s) else (n or "pred")
        for n, s in zip(pr_names, pr_scores, strict=True)
    ]
    legend = _legend_entries("GT", gt_names, "gt") + _legend_entries("Pred", pr_names, "pred")
    scale = None
    if point_labels is not None:
        classes = check_point_labels(point_labels, len(pts))
        point_colors = geometry.point_class_colors(classes)
        legend += point_class_legend(classes, class_names)
    elif color_by == "label":
        point_colors = point_colors_by(pts, mode, color_by, both, box_color)
    else:
        point_colors, scale = ramp_point_colors(pts, mode, color_by)
    title = f"pred score >= {score_thr:g}" if score_thr > 0 and pred is not None else None
    return Scene(
        pts,
        point_colors,
        mode,
        gt,
        pr,
        segments,
        segment_colors,
        corners,
        box_text,
        box_color,
        legend,
        title,
        scale,
    )


def _cloud_mode(points: object, mode: str | None) -> str:
    """The cloud's system: a points structure's own, else `mode`, else LiDAR (they must agree)."""
    if isinstance(points, BasePoints):
        own = mode_name(points.mode)
        if mode is not None and mode_name(mode) != own:
            raise FormatError(f"points are {own} points but mode={mode!r} was given")
        return own
    return mode_name(mode or "lidar")


def _legend_entries(prefix: str, names: Sequence[str], source: str) -> list[image.LegendEntry]:
    if len(names) == 0:
        return []
    unique, counts = np.unique(np.asarray(names, dtype=str), return_counts=True)
    fallback = "boxes" if source == "gt" else "predictions"
    return [
        image.LegendEntry(f"{prefix} {name or fallback} ({count})", geometry.class_color(str(name), source))
        for name, count in zip(unique, counts, strict=True)
    ]


__all__ = [
    "COLOR_BY",
    "BoxSet",
    "ColorScale",
    "Scene",
    "as_box_set",
    "build_scene",
    "check_points",
    "convert_box_set",
    "mode_name",
    "point_colors_by",
]
