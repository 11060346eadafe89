"""CenterPoint's decoding: heatmap peaks -> boxes, then circle or rotated NMS per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pc3d.errors import FormatError
from pc3d.ops import batched_nms_bev, circle_nms
from pc3d.structures import Detections3D, LiDARBoxes3D
from pc3d_det3d.structures import BEVGrid

NMS_TYPES = ("circle", "rotate", "none")
# Keeps exp(log size) finite when an untrained head outputs large values.
MAX_LOG_SIZE = 5.0


@dataclass(frozen=True)
class CenterDecodeSettings:
    """How :class:`~pc3d_det3d.center_head.CenterPointHead` turns its output into boxes
    (MMDetection3D's ``test_cfg`` of CenterPoint).

    Attributes:
        score_threshold: the lowest score kept.
        max_per_task: top-K peaks taken per task and frame (CenterPoint's ``max_num``).
        pool_kernel: a cell is a peak if it is the maximum of its ``pool_kernel`` square
            (max-pool NMS); 1 keeps every cell.
        nms_type: ``"circle"`` (per class, BEV centre distance), ``"rotate"`` (per class, rotated
            BEV IoU) or ``"none"``.
        circle_radius: metres, one per class or one for all (``"circle"``); a centre within it of
            a better one of its class is dropped.
        nms_threshold: IoU above which a box is dropped (``"rotate"``).
        pre_max: the best boxes per frame that enter NMS.
        post_max: the most boxes per frame after NMS.
        post_center_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``; boxes whose centre
            lies outside are dropped (``None``: keep all).
    """

    score_threshold: float = 0.1
    max_per_task: int = 100
    pool_kernel: int = 3
    nms_type: str = "circle"
    circle_radius: float | tuple[float, ...] = 1.0
    nms_threshold: float = 0.2
    pre_max: int = 1000
    post_max: int = 83
    post_center_range: tuple[float, ...] | None = None

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, num_classes: int, key: str
    ) -> CenterDecodeSettings:
        """Checked settings from a config mapping.

        Args:
            values: the mapping (``None``: defaults).
            num_classes: classes of the head (``circle_radius`` gives one or this many).
            key: the mapping's config key, named in errors (``model.bbox_head.test_cfg``).

        Raises:
            FormatError: unknown keys, an unknown ``nms_type``, a wrong number of radii, a
                ``pool_kernel`` that is not a positive odd number.
        """
        values = dict(values or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FormatError(f"{key}: unknown key(s) {unknown}; known: {', '.join(known)}")
        if "circle_radius" in values and not isinstance(values["circle_radius"], (int, float)):
            radii = tuple(float(r) for r in values["circle_radius"])
            if len(radii) != num_classes:
                raise FormatError(
                    f"{key}.circle_radius: give one radius or {num_classes} (one per class), got {len(radii)}"
                )
            values["circle_radius"] = radii
        if values.get("post_center_range") is not None:
            values["post_center_range"] = tuple(float(v) for v in values["post_center_range"])
            if len(values["post_center_range"]) != 6:
                raise FormatError(f"{key}.post_center_range: needs 6 numbers")
        settings = cls(**values)
        if settings.nms_type not in NMS_TYPES:
            raise FormatError(f"{key}.nms_type: {settings.nms_type!r} is not one of {', '.join(NMS_TYPES)}")
        if settings.pool_kernel < 1 or settings.pool_kernel % 2 == 0:
            raise FormatError(f"{key}.pool_kernel: a positive odd number, got {settings.pool_kernel}")
        return settings

    def radius_of(self, label: int) -> float:
        """The circle-NMS radius of class ``label``."""
        if isinstance(self.circle_radius, tuple):
            return self.circle_radius[label]
        return float(self.circle_radius)


def decode_task(
    heatmap: Tensor,
    regression: Tensor,
    classes: Sequence[int],
    grid: BEVGrid,
    settings: CenterDecodeSettings,
    gravity_z: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """The top peaks of one task: boxes ``Tensor[B, k, 7 or 9]`` (bottom centre), scores
    ``Tensor[B, k]`` and global labels ``Long[B, k]``.

    Args:
        heatmap: ``Tensor[B, K_task, ny, nx]`` logits.
        regression: ``Tensor[B, code_size, ny, nx]``: ``dx, dy`` (in cells), ``z``, three log
            sizes, ``sin, cos`` of the yaw, then any extra channels (velocity), as
            :mod:`pc3d_det3d.center_targets` encodes them.
        classes: global class index of each heatmap channel.
        grid: the head's output grid.
        settings: decoding settings.
        gravity_z: ``z`` is the gravity centre's height (CenterPoint); False: the bottom's (the
            minimal head of :mod:`pc3d_det3d.heads`).
    """
    scores, labels, cell = top_peaks(heatmap, classes, settings)
    reg = (
        regression.flatten(2).gather(2, cell[:, None, :].expand(-1, regression.shape[1], -1)).transpose(1, 2)
    )
    return peak_boxes(reg, cell, grid, heatmap.shape[-1], gravity_z), scores, labels


def top_peaks(
    heatmap: Tensor, classes: Sequence[int], settings: CenterDecodeSettings
) -> tuple[Tensor, Tensor, Tensor]:
    """The ``settings.max_per_task`` best heatmap peaks of one task.

    Args:
        heatmap: ``Tensor[B, K_task, ny, nx]`` logits.
        classes: global class index of each heatmap channel.
        settings: decoding settings (``pool_kernel``, ``max_per_task``).

    Returns:
        Scores ``Tensor[B, k]`` (sigmoid), global labels ``Long[B, k]`` and the peaks' cells
        ``Long[B, k]`` (``row * nx + col``).
    """
    heat = heatmap.sigmoid()
    _, _, ny, nx = heat.shape
    if settings.pool_kernel > 1:
        pooled = F.max_pool2d(heat, settings.pool_kernel, stride=1, padding=settings.pool_kernel // 2)
        heat = heat * (heat == pooled)
    scores, index = heat.flatten(1).topk(min(settings.max_per_task, heat[0].numel()), dim=1)
    labels = torch.tensor(list(classes), device=heat.device)[index // (ny * nx)]
    return scores, labels, index % (ny * nx)


def peak_boxes(reg: Tensor, cell: Tensor, grid: BEVGrid, nx: int, gravity_z: bool = True) -> Tensor:
    """LiDAR boxes ``Tensor[B, k, 7 or 9]`` (bottom centre) from the regression at peak cells.

    Args:
        reg: ``Tensor[B, k, code_size]``, the regression channels at each peak (see
            :func:`decode_task`).
        cell: ``Long[B, k]``, each peak's cell ``row * nx + col``.
        grid: the head's output grid.
        nx: columns of the map.
        gravity_z: ``z`` is the gravity centre's height (see :func:`decode_task`).
    """
    row, col = cell // nx, cell % nx
    x = grid.point_cloud_range[0] + (col + reg[..., 0]) * grid.cell_size[0]
    y = grid.point_cloud_range[1] + (row + reg[..., 1]) * grid.cell_size[1]
    sizes = reg[..., 3:6].clamp(max=MAX_LOG_SIZE).exp()
    z = reg[..., 2] - sizes[..., 2] / 2 if gravity_z else reg[..., 2]  # -> bottom centre
    yaw = torch.atan2(reg[..., 6], reg[..., 7])
    return torch.cat(
        [x[..., None], y[..., None], z[..., None], sizes, yaw[..., None], reg[..., 8:10]], dim=-1
    )


def select_detections(
    boxes: Tensor, scores: Tensor, labels: Tensor, settings: CenterDecodeSettings
) -> Detections3D:
    """One frame's detections from its candidates: score threshold, centre range, NMS.

    Args:
        boxes: ``Tensor[N, 7+C]`` LiDAR boxes.
        scores: ``Tensor[N]``.
        labels: ``Long[N]``.
        settings: decoding settings.

    Returns:
        The kept boxes, highest score first.
    """
    keep = scores >= settings.score_threshold
    if settings.post_center_range is not None:
        rng = torch.tensor(settings.post_center_range, device=boxes.device)
        centre = boxes[:, :3].clone()
        centre[:, 2] += boxes[:, 5] / 2
        keep &= ((centre >= rng[:3]) & (centre <= rng[3:])).all(dim=1)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    order = scores.argsort(descending=True)[: settings.pre_max]
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    if settings.nms_type == "rotate":
        kept = batched_nms_bev(boxes, scores, labels, settings.nms_threshold, post_max=settings.post_max)
    elif settings.nms_type == "circle":
        kept = circle_nms_per_class(boxes, scores, labels, settings)
    else:
        kept = torch.arange(min(len(scores), settings.post_max), device=scores.device)
    return Detections3D(LiDARBoxes3D(boxes[kept]), scores[kept], labels[kept])


def circle_nms_per_class(
    boxes: Tensor, scores: Tensor, labels: Tensor, settings: CenterDecodeSettings
) -> Tensor:
    """Indices kept by circle NMS run separately per class (each with its own radius), merged
    highest score first and cut to ``settings.post_max``.

    Args:
        boxes: ``Tensor[N, 7+C]`` sorted by score, highest first.
        scores: ``Tensor[N]``.
        labels: ``Long[N]``.
        settings: decoding settings.
    """
    kept = []
    for label in labels.unique().tolist():  # one pass per class present, not per box
        index = torch.nonzero(labels == label).squeeze(1)
        kept.append(index[circle_nms(boxes[index, :2], scores[index], settings.radius_of(int(label)))])
    if not kept:
        return torch.zeros(0, dtype=torch.long, device=scores.device)
    merged = torch.cat(kept)
    return merged[scores[merged].argsort(descending=True)][: settings.post_max]
