"""CenterPoint-style BEV detection heads: a class heatmap and box regression per BEV cell.

Target encoding, loss and decoding are shared by every head built on :class:`CenterHeadBase`,
so a new head (like the example third-party plugin's) only defines its layers and ``forward``.
This is the minimal CenterPoint-style head of :class:`~pc3d_det3d.detectors.BEVDetector`;
CenterPoint's own head (tasks, CornerNet radius, code weights, velocity, circle/rotated NMS) for
:class:`~pc3d_det3d.voxelnet.VoxelDetector` is :class:`~pc3d_det3d.center_head.CenterPointHead`
(docs/centerpoint.md compares the two).

Regression channels, per cell, in this order (:data:`REGRESSION_CHANNELS` = 8):
``dx, dy`` (box centre minus the cell's corner, in cells), ``z`` (bottom, metres),
``log(x_size), log(y_size), log(z_size)``, ``sin(yaw), cos(yaw)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.labels import check_labels
from pc3d.nn.layers import ConvNormAct
from pc3d.nn.losses import gaussian_focal_loss, l1_loss
from pc3d.structures import LiDARBoxes3D
from pc3d_det3d.center_decode import CenterDecodeSettings, decode_task
from pc3d_det3d.structures import BEVGrid, Detections3D, lidar_box_tensor

REGRESSION_CHANNELS = 8


class CenterHeadOutput(NamedTuple):
    """Raw head output over the head's BEV grid.

    Attributes:
        heatmap: ``Tensor[B, num_classes, ny, nx]`` logits.
        regression: ``Tensor[B, 8, ny, nx]`` (see the module docstring for the channels).
    """

    heatmap: Tensor
    regression: Tensor


@dataclass(frozen=True)
class CenterTargets:
    """Training targets over the head's BEV grid.

    Attributes:
        heatmap: ``Tensor[B, K, ny, nx]`` in [0, 1]: a Gaussian around each box centre cell of
            the box's class, exactly 1 at the centre cell.
        regression: ``Tensor[B, 8, ny, nx]``, meaningful where ``mask`` is set.
        mask: ``Bool[B, ny, nx]``: the centre cells.
    """

    heatmap: Tensor
    regression: Tensor
    mask: Tensor


def encode_center_targets(
    gt_boxes: Sequence[LiDARBoxes3D | Tensor],
    gt_labels: Sequence[Tensor],
    grid: BEVGrid,
    num_classes: int,
    min_radius: float = 1.0,
    num_classes_key: str = "num_classes",
) -> CenterTargets:
    """Heatmap and regression targets for a batch of ground-truth boxes.

    The Gaussian's radius (in cells) is half the box's smaller footprint side, at least
    ``min_radius``; sigma = (2 * radius + 1) / 6 as in CenterNet. Boxes whose centre lies outside
    the grid give no target. Two boxes centred in one cell: the later one's regression wins.
    Vectorised over boxes: memory is ``num_boxes * ny * nx`` floats.

    Args:
        gt_boxes: per sample :class:`LiDARBoxes3D` (or ``Tensor[M_i, 7]`` in their layout: bottom
            centre, sizes > 0).
        gt_labels: per sample ``Long[M_i]`` class indices in ``[0, num_classes)``.
        grid: the head's output grid.
        num_classes: heatmap channels.
        min_radius: smallest Gaussian radius, in cells.
        num_classes_key: where ``num_classes`` was set (a config key such as
            ``model.head.num_classes``), named when a label falls outside the classes.

    Returns:
        The targets of the batch.

    Raises:
        ShapeError: box and label lists of different lengths or shapes.
        FormatError: boxes of another system, NaN/inf boxes, sizes that are not positive, or
            labels outside ``[0, num_classes)``.
    """
    batch = len(gt_boxes)
    boxes, labels, sample = _flatten_gt(gt_boxes, gt_labels, num_classes, num_classes_key)
    ny, nx = grid.shape
    device = boxes.device
    regression = torch.zeros(batch, REGRESSION_CHANNELS, ny, nx, device=device)
    mask = torch.zeros(batch, ny, nx, dtype=torch.bool, device=device)

    x_min, y_min = grid.point_cloud_range[0], grid.point_cloud_range[1]
    cell_x, cell_y = grid.cell_size
    u = (boxes[:, 0] - x_min) / cell_x  # centre in cells along x (columns)
    v = (boxes[:, 1] - y_min) / cell_y  # ... along y (rows)
    keep = (u >= 0) & (u < nx) & (v >= 0) & (v < ny)
    boxes, labels, sample, u, v = boxes[keep], labels[keep], sample[keep], u[keep], v[keep]
    col, row = u.floor().long(), v.floor().long()

    footprint = torch.minimum(boxes[:, 3] / cell_x, boxes[:, 4] / cell_y)
    sigma = (2 * (footprint / 2).clamp(min=min_radius) + 1) / 6
    heatmap = _gaussian_heatmap(row, col, sigma, sample * num_classes + labels, batch * num_classes, grid)

    values = torch.stack(
        [
            u - col,
            v - row,
            boxes[:, 2],
            boxes[:, 3].log(),
            boxes[:, 4].log(),
            boxes[:, 5].log(),
            boxes[:, 6].sin(),
            boxes[:, 6].cos(),
        ],
        dim=1,
    )
    regression[sample, :, row, col] = values
    mask[sample, row, col] = True
    return CenterTargets(heatmap.view(batch, num_classes, ny, nx), regression, mask)


def _flatten_gt(
    gt_boxes: Sequence[LiDARBoxes3D | Tensor],
    gt_labels: Sequence[Tensor],
    num_classes: int,
    num_classes_key: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """The batch's checked boxes ``Tensor[T, 7]``, labels ``Long[T]`` and sample index ``Long[T]``."""
    if len(gt_boxes) != len(gt_labels):
        raise ShapeError(f"{len(gt_boxes)} box tensors but {len(gt_labels)} label tensors")
    tensors = [lidar_box_tensor(boxes, f"gt_boxes[{index}]") for index, boxes in enumerate(gt_boxes)]
    for index, (boxes, labels) in enumerate(zip(tensors, gt_labels)):
        if boxes.ndim != 2 or boxes.shape[1] < 7:
            raise ShapeError(f"gt_boxes[{index}]: expected Tensor[M, 7], got {tuple(boxes.shape)}")
        if labels.shape != (boxes.shape[0],):
            raise ShapeError(
                f"gt_labels[{index}]: expected Long[{boxes.shape[0]}], got {tuple(labels.shape)}"
            )
    if not tensors:
        return torch.zeros(0, 7), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    device = tensors[0].device
    boxes = torch.cat([b[:, :7].float() for b in tensors])
    labels = torch.cat([lab.long() for lab in gt_labels]).to(device)
    counts = torch.tensor([len(b) for b in tensors], device=device)
    sample = torch.repeat_interleave(torch.arange(len(tensors), device=device), counts)
    if not bool(torch.isfinite(boxes).all()):
        raise FormatError("gt_boxes hold NaN or infinite values")
    if bool((boxes[:, 3:6] <= 0).any()):
        raise FormatError("gt_boxes: every size (x_size, y_size, z_size) must be positive")
    check_labels(labels, num_classes, num_classes_key)
    return boxes, labels, sample


def _gaussian_heatmap(
    row: Tensor, col: Tensor, sigma: Tensor, channel: Tensor, num_channels: int, grid: BEVGrid
) -> Tensor:
    """``Tensor[num_channels, ny * nx]``: per channel, the maximum of the Gaussians of its boxes.

    Vectorised over the ``T`` boxes (memory ``T * ny * nx`` floats): box ``t`` centred at cell
    ``(row[t], col[t])`` with ``sigma[t]`` cells, drawn into channel ``channel[t]``.
    """
    ny, nx = grid.shape
    rows = torch.arange(ny, device=row.device)
    cols = torch.arange(nx, device=row.device)
    dist2 = (rows[None, :, None] - row[:, None, None]) ** 2 + (cols[None, None, :] - col[:, None, None]) ** 2
    gaussian = torch.exp(-dist2 / (2 * sigma[:, None, None] ** 2))  # [T, ny, nx], 1 at centres
    heatmap = torch.zeros(num_channels, ny * nx, device=row.device)
    index = channel[:, None].expand(-1, ny * nx)
    return heatmap.scatter_reduce(0, index, gaussian.view(-1, ny * nx), reduce="amax")


def check_head_channels(in_channels: int, num_classes: int) -> None:
    """Check the channel counts every centre head takes.

    Raises:
        ValueError: ``in_channels`` or ``num_classes`` below 1.
    """
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"in_channels ({in_channels}) and num_classes ({num_classes}) must be >= 1")


def decode_center_output(
    output: CenterHeadOutput,
    grid: BEVGrid,
    score_threshold: float = 0.1,
    max_detections: int = 100,
) -> list[Detections3D]:
    """Boxes from heatmap peaks: a cell is a peak if it is the maximum of its 3x3 neighbourhood
    (CenterPoint's max-pool NMS), then the top ``max_detections`` peaks over all classes whose
    score reaches ``score_threshold``.

    Args:
        output: the head's raw output over ``grid``.
        grid: the head's output grid.
        score_threshold: the lowest score kept.
        max_detections: the most detections per sample.

    Returns:
        One :class:`Detections3D` per sample, highest score first.
    """
    # CenterPoint's decoding with one task of every class and no NMS beyond the peaks.
    settings = CenterDecodeSettings(score_threshold, max_detections, pool_kernel=3, nms_type="none")
    classes = range(output.heatmap.shape[1])
    boxes, scores, labels = decode_task(
        output.heatmap, output.regression, classes, grid, settings, gravity_z=False
    )
    keep = scores >= score_threshold
    return [
        Detections3D(LiDARBoxes3D(boxes[b][keep[b]]), scores[b][keep[b]], labels[b][keep[b]])
        for b in range(boxes.shape[0])
    ]


class CenterHeadBase(nn.Module):
    """Base of CenterPoint-style heads: subclasses build their layers in ``__init__`` (calling
    ``super().__init__(in_channels, num_classes, ...)``) and implement
    ``forward(bev: Tensor[B, in_channels, ny, nx]) -> CenterHeadOutput``. Targets, loss and
    decoding are shared.

    Args:
        in_channels: channels of the BEV map the head reads.
        num_classes: heatmap channels.
        heatmap_weight: weight of the focal heatmap loss in ``loss``.
        regression_weight: weight of the L1 box regression loss.
        min_radius: smallest Gaussian radius, in cells.

    Attributes:
        config_key: where configs put the head (``model.head``, as :class:`BEVDetector` holds
            it); a label outside ``num_classes`` is reported against ``<config_key>.num_classes``.

    Raises:
        ValueError: ``in_channels`` or ``num_classes`` below 1.
    """

    config_key = "model.head"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        heatmap_weight: float = 1.0,
        regression_weight: float = 0.25,
        min_radius: float = 1.0,
    ) -> None:
        super().__init__()
        check_head_channels(in_channels, num_classes)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.heatmap_weight = heatmap_weight
        self.regression_weight = regression_weight
        self.min_radius = min_radius

    def loss(
        self,
        output: CenterHeadOutput,
        gt_boxes: Sequence[LiDARBoxes3D | Tensor],
        gt_labels: Sequence[Tensor],
        grid: BEVGrid,
    ) -> dict[str, Tensor]:
        """Focal heatmap loss + L1 regression loss at centre cells.

        Args:
            output: the head's raw output over ``grid``.
            gt_boxes: per sample :class:`LiDARBoxes3D` (or ``Tensor[M_i, 7]``).
            gt_labels: per sample ``Long[M_i]`` in ``[0, num_classes)``.
            grid: the head's output grid.

        Returns:
            ``loss_heatmap``, ``loss_regression`` and their weighted sum ``loss``.

        Raises:
            ShapeError: output of the wrong shape for ``grid`` and ``num_classes``.
            FormatError: bad boxes, or a label outside ``[0, num_classes)`` (naming
                ``<config_key>.num_classes``).
        """
        expected = (self.num_classes, *grid.shape)
        if tuple(output.heatmap.shape[1:]) != expected:
            raise ShapeError(
                f"{type(self).__name__}: heatmap is {tuple(output.heatmap.shape)}, expected "
                f"[B, {', '.join(map(str, expected))}]"
            )
        if tuple(output.regression.shape[1:]) != (REGRESSION_CHANNELS, *grid.shape):
            raise ShapeError(
                f"{type(self).__name__}: regression is {tuple(output.regression.shape)}, expected "
                f"[B, {REGRESSION_CHANNELS}, {grid.ny}, {grid.nx}]"
            )
        targets = encode_center_targets(
            gt_boxes, gt_labels, grid, self.num_classes, self.min_radius, f"{self.config_key}.num_classes"
        )
        loss_heatmap = gaussian_focal_loss(output.heatmap, targets.heatmap.to(output.heatmap))
        mask = targets.mask[:, None].to(output.regression)
        error = l1_loss(output.regression, targets.regression.to(output.regression), mask, reduction="sum")
        loss_regression = error / targets.mask.sum().clamp(min=1)
        return {
            "loss_heatmap": loss_heatmap,
            "loss_regression": loss_regression,
            "loss": self.heatmap_weight * loss_heatmap + self.regression_weight * loss_regression,
        }

    def predict(
        self,
        output: CenterHeadOutput,
        grid: BEVGrid,
        score_threshold: float = 0.1,
        max_detections: int = 100,
    ) -> list[Detections3D]:
        """Decode ``output`` into boxes per sample (see :func:`decode_center_output`)."""
        return decode_center_output(output, grid, score_threshold, max_detections)


class CenterHead(CenterHeadBase):
    """A shared 3x3 conv-BN-ReLU, then a 1x1 conv to the class heatmap and one to the 8
    regression channels.

    Args:
        in_channels: channels of the BEV map the head reads.
        num_classes: heatmap channels.
        head_channels: channels of the shared conv.
        heatmap_weight: weight of the focal heatmap loss in ``loss``.
        regression_weight: weight of the L1 box regression loss.
        min_radius: smallest Gaussian radius, in cells.
    """

    # The base's arguments spelled out again (not **kwargs): the config layer checks a YAML head
    # against this signature.
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        head_channels: int = 64,
        heatmap_weight: float = 1.0,
        regression_weight: float = 0.25,
        min_radius: float = 1.0,
    ) -> None:
        super().__init__(in_channels, num_classes, heatmap_weight, regression_weight, min_radius)
        self.shared = ConvNormAct(in_channels, head_channels, 3)
        self.heatmap = nn.Conv2d(head_channels, num_classes, 1)
        self.regression = nn.Conv2d(head_channels, REGRESSION_CHANNELS, 1)
        # CenterNet's prior: start every cell at probability 0.1 so that the many empty cells do
        # not dominate the first steps of the focal loss.
        if self.heatmap.bias is not None:
            nn.init.constant_(self.heatmap.bias, -2.19)

    def forward(self, bev: Tensor) -> CenterHeadOutput:
        """``Tensor[B, in_channels, ny, nx]`` -> heatmap ``[B, K, ny, nx]``, regression
        ``[B, 8, ny, nx]``."""
        shared = self.shared(bev)
        return CenterHeadOutput(self.heatmap(shared), self.regression(shared))
