"""CenterPoint's training targets: Gaussian class heatmaps and per-centre box regression.

For every box of a task (a group of classes sharing one output branch) whose BEV centre lies on
the head's grid:

- the class heatmap gets a Gaussian around the box's centre cell, exactly 1 at that cell, of
  radius ``max(min_radius, int(gaussian_radius(size in cells, gaussian_overlap)))`` cells, sigma
  ``(2 * radius + 1) / 6`` and cut to the ``(2 * radius + 1)`` square window (CenterPoint's
  ``draw_heatmap_gaussian``); overlapping Gaussians of one class keep the maximum;
- the centre cell gets the regression target, channels in :data:`CENTER_CODE` order:
  ``dx, dy`` (centre minus the cell's corner, in cells), ``z`` (gravity centre, metres),
  ``log(x_size), log(y_size), log(z_size)``, ``sin(yaw), cos(yaw)`` and, with velocity,
  ``vx, vy``. Two boxes centred in one cell: one of them (the later) gives the target.

Everything is vectorised over boxes: memory is ``boxes * (2 * max_radius + 1) ** 2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pc3d_det3d.structures import BEVGrid

# Names of the regression channel groups and their widths, in channel order.
CENTER_CODE: tuple[tuple[str, int], ...] = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2))
VELOCITY_CODE: tuple[str, int] = ("vel", 2)


def code_size(with_velocity: bool) -> int:
    """Regression channels: 8, or 10 with velocity."""
    return 10 if with_velocity else 8


def gaussian_radius(height: Tensor, width: Tensor, min_overlap: float = 0.1) -> Tensor:
    """CornerNet's Gaussian radius (as CenterPoint uses it), element-wise.

    The smallest of the three radii such that a box whose corners move by that radius still has an
    IoU of at least ``min_overlap`` with the original (both corners inside, both outside, one of
    each), for a ``height x width`` box in cells.

    Args:
        height: box extents along one axis, in cells.
        width: box extents along the other axis, in cells (the formula is symmetric).
        min_overlap: the IoU kept.

    Returns:
        The radii, same shape as ``height``.
    """
    area = height * width
    sum_hw = height + width
    b1, c1 = sum_hw, area * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + (b1**2 - 4 * c1).clamp(min=0).sqrt()) / 2
    b2, c2 = 2 * sum_hw, (1 - min_overlap) * area
    r2 = (b2 + (b2**2 - 16 * c2).clamp(min=0).sqrt()) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * sum_hw, (min_overlap - 1) * area
    r3 = (b3 + (b3**2 - 4 * a3 * c3).clamp(min=0).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


@dataclass(frozen=True)
class CenterTaskTargets:
    """One task's targets over the head's grid.

    Attributes:
        heatmap: ``Tensor[B, K_task, ny, nx]`` in [0, 1], exactly 1 at centre cells.
        regression: ``Tensor[B, code_size, ny, nx]``, meaningful where ``mask`` is set.
        mask: ``Bool[B, ny, nx]``: the centre cells.
        radius: ``Long[T]`` the Gaussian radius (cells) of each drawn box, in input order of the
            task's boxes that lie on the grid (for inspection and tests).
    """

    heatmap: Tensor
    regression: Tensor
    mask: Tensor
    radius: Tensor


def draw_gaussians(
    heatmap: Tensor, sample: Tensor, channel: Tensor, row: Tensor, col: Tensor, radius: Tensor
) -> Tensor:
    """Max-combine truncated Gaussians into ``heatmap`` (out of place).

    Args:
        heatmap: ``Tensor[B, K, ny, nx]``.
        sample: ``Long[T]`` batch index of each Gaussian.
        channel: ``Long[T]`` heatmap channel.
        row: ``Long[T]`` centre row.
        col: ``Long[T]`` centre column.
        radius: ``Long[T]`` radius in cells (window ``2 * radius + 1``).

    Returns:
        The updated heatmap.
    """
    if row.numel() == 0:
        return heatmap
    batch, channels, ny, nx = heatmap.shape
    reach = int(radius.max())
    offsets = torch.arange(-reach, reach + 1, device=row.device)
    dy, dx = offsets[:, None], offsets[None, :]  # [W, 1], [1, W]
    sigma = (2 * radius.float() + 1) / 6
    values = torch.exp(-(dx**2 + dy**2)[None].float() / (2 * sigma[:, None, None] ** 2))  # [T, W, W]
    rows = row[:, None, None] + dy[None]
    cols = col[:, None, None] + dx[None]
    inside = (dx.abs()[None] <= radius[:, None, None]) & (dy.abs()[None] <= radius[:, None, None])
    inside &= (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    # CenterPoint drops the tail of the window below eps * peak.
    inside &= values >= torch.finfo(values.dtype).eps
    base = (sample * channels + channel) * ny * nx
    index = torch.where(inside, base[:, None, None] + rows * nx + cols, torch.zeros_like(rows))
    flat = heatmap.flatten().scatter_reduce(
        0, index.flatten(), torch.where(inside, values, torch.zeros_like(values)).flatten(), reduce="amax"
    )
    return flat.view(batch, channels, ny, nx)


def encode_task_targets(
    boxes: Tensor,
    labels: Tensor,
    sample: Tensor,
    batch_size: int,
    num_task_classes: int,
    grid: BEVGrid,
    with_velocity: bool = False,
    gaussian_overlap: float = 0.1,
    min_radius: int = 2,
) -> CenterTaskTargets:
    """Targets of one task from the batch's boxes of that task (see the module docstring).

    Args:
        boxes: ``Tensor[T, 7]`` (``Tensor[T, 9]`` with velocity) LiDAR boxes, bottom centre, sizes
            > 0, already checked.
        labels: ``Long[T]`` class index within the task, in ``[0, num_task_classes)``.
        sample: ``Long[T]`` batch index of each box.
        batch_size: frames in the batch.
        num_task_classes: heatmap channels of the task.
        grid: the head's output grid.
        with_velocity: add the ``vx, vy`` channels (boxes columns 7 and 8).
        gaussian_overlap: ``min_overlap`` of :func:`gaussian_radius`.
        min_radius: smallest radius, cells.

    Returns:
        The task's targets.
    """
    ny, nx = grid.shape
    device = boxes.device
    heatmap = torch.zeros(batch_size, num_task_classes, ny, nx, device=device)
    regression = torch.zeros(batch_size, code_size(with_velocity), ny, nx, device=device)
    mask = torch.zeros(batch_size, ny, nx, dtype=torch.bool, device=device)
    cell_x, cell_y = grid.cell_size
    u = (boxes[:, 0] - grid.point_cloud_range[0]) / cell_x
    v = (boxes[:, 1] - grid.point_cloud_range[1]) / cell_y
    keep = (u >= 0) & (u < nx) & (v >= 0) & (v < ny)
    boxes, labels, sample, u, v = boxes[keep], labels[keep], sample[keep], u[keep], v[keep]
    col, row = u.floor().long(), v.floor().long()
    radius = gaussian_radius(boxes[:, 4] / cell_y, boxes[:, 3] / cell_x, gaussian_overlap)
    radius = radius.floor().long().clamp(min=min_radius)
    heatmap = draw_gaussians(heatmap, sample, labels, row, col, radius)
    columns = [
        u - col,
        v - row,
        boxes[:, 2] + boxes[:, 5] / 2,  # gravity centre, as CenterPoint regresses it
        boxes[:, 3].log(),
        boxes[:, 4].log(),
        boxes[:, 5].log(),
        boxes[:, 6].sin(),
        boxes[:, 6].cos(),
    ]
    if with_velocity:
        columns += [boxes[:, 7], boxes[:, 8]]
    regression[sample, :, row, col] = torch.stack(columns, dim=1)
    mask[sample, row, col] = True
    return CenterTaskTargets(heatmap, regression, mask, radius)


def split_by_task(labels: Tensor, tasks: Sequence[Sequence[int]]) -> list[tuple[Tensor, Tensor]]:
    """Per task: the indices of the boxes whose label belongs to it, and their label within it.

    Args:
        labels: ``Long[T]`` global class indices.
        tasks: the global class indices of each task.

    Returns:
        ``(box indices Long[T_i], task-local labels Long[T_i])`` per task.
    """
    result = []
    for classes in tasks:  # a handful of tasks; vectorised over boxes
        ids = torch.tensor(list(classes), device=labels.device, dtype=torch.long)
        match = labels[:, None] == ids[None, :]  # [T, K_task]
        index = torch.nonzero(match.any(dim=1)).squeeze(1)
        result.append((index, match[index].long().argmax(dim=1)))
    return result
