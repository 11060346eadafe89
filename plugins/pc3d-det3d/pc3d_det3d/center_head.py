"""CenterPoint's centre head (MMDetection3D's ``CenterHead``) for :class:`VoxelDetector`.

The neck's BEV map goes through one shared conv, then one branch group per *task* (a group of
classes of similar size: CenterPoint's ``tasks``). Each task predicts a class heatmap and the box
regression at each cell: ``reg`` (sub-cell centre offset), ``height`` (gravity-centre z), ``dim``
(log sizes), ``rot`` (sin, cos of the yaw) and, optionally, ``vel`` (vx, vy). Training: Gaussian
heatmap targets (:mod:`pc3d_det3d.center_targets`), penalty-reduced focal loss on the heatmaps,
L1 on the regression at centre cells weighted per channel (``code_weights``). Inference: max-pool
peaks, top-K, score threshold, then circle or rotated NMS per class
(:mod:`pc3d_det3d.center_decode`).

The head works on any BEV map whose grid is the voxel grid downsampled by ``out_size_factor``:
pillars (PointPillarsScatter, stride 2 after SECOND + FPN) or voxels (SparseEncoder, stride 8).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.labels import check_labels
from pc3d.nn.layers import ConvNormAct
from pc3d.nn.losses import gaussian_focal_loss, l1_loss
from pc3d.structures import Detections3D, LiDARBoxes3D
from pc3d_det3d.center_decode import (
    CenterDecodeSettings,
    decode_task,
    peak_boxes,
    select_detections,
    top_peaks,
)
from pc3d_det3d.center_targets import (
    CENTER_CODE,
    VELOCITY_CODE,
    code_size,
    encode_task_targets,
    split_by_task,
)
from pc3d_det3d.structures import BEVGrid, lidar_box_tensor

__all__ = ["CenterPointHead", "CenterPointOutput"]


class CenterPointOutput(NamedTuple):
    """Raw output of :class:`CenterPointHead`, one entry per task.

    Attributes:
        heatmaps: ``Tensor[B, K_task, ny, nx]`` logits per task.
        regressions: ``Tensor[B, 8 or 10, ny, nx]`` per task, channels ``reg(2), height, dim(3),
            rot(2)[, vel(2)]``.
    """

    heatmaps: tuple[Tensor, ...]
    regressions: tuple[Tensor, ...]


def conv_branch(in_channels: int, hidden: int, out_channels: int, final_kernel: int) -> nn.Sequential:
    """``conv3x3 -> BN -> ReLU -> conv(final_kernel)`` (CenterPoint's ``SeparateHead`` branch)."""
    return nn.Sequential(
        *ConvNormAct(in_channels, hidden, 3),
        nn.Conv2d(hidden, out_channels, final_kernel, padding=final_kernel // 2),
    )


class TaskHead(nn.Module):
    """One task's branches: ``heatmap`` and the regression groups, each a :func:`conv_branch`.

    Args:
        in_channels: channels of the shared conv's output.
        num_classes: heatmap channels.
        head_channels: hidden channels of each branch.
        with_velocity: add the ``vel`` branch.
        final_kernel: kernel of each branch's last conv.
        init_bias: initial heatmap bias (-2.19: probability 0.1 everywhere, CenterNet's prior so
            that the many empty cells do not dominate the first focal-loss steps).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        head_channels: int,
        with_velocity: bool,
        final_kernel: int,
        init_bias: float,
    ) -> None:
        super().__init__()
        groups = CENTER_CODE + ((VELOCITY_CODE,) if with_velocity else ())
        self.groups = [name for name, _ in groups]
        for name, width in groups:
            self.add_module(name, conv_branch(in_channels, head_channels, width, final_kernel))
        self.heatmap = conv_branch(in_channels, head_channels, num_classes, final_kernel)
        final = self.heatmap[-1]
        if isinstance(final, nn.Conv2d) and final.bias is not None:
            nn.init.constant_(final.bias, init_bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(heatmap [B, K, ny, nx], regression [B, code_size, ny, nx])``."""
        regression = torch.cat([getattr(self, name)(features) for name in self.groups], dim=1)
        return self.heatmap(features), regression

    def regression_at(self, features: Tensor, cell: Tensor) -> Tensor:
        """The regression channels at the given cells only, as :meth:`forward` computes them there.

        Each branch's output at a cell reads its hidden map over the final conv's window, and
        each hidden cell the shared map over the first conv's window; so one window of the
        shared map per cell (5 x 5 for two 3x3 convs) goes through the branch without padding,
        the hidden cells outside the map set to zero (the final conv's zero padding).

        Args:
            features: ``Tensor[B, C, ny, nx]``, the shared conv's map.
            cell: ``Long[B, k]``, cells as ``row * nx + col``.

        Returns:
            ``Tensor[B, k, code_size]``, channels in :meth:`forward`'s order.
        """
        batch, channels, ny, nx = features.shape
        k = cell.shape[1]
        branches = [getattr(self, name) for name in self.groups]
        first_radius = branches[0][0].kernel_size[0] // 2  # conv_branch: 3x3 conv, then final conv
        last_radius = branches[0][-1].kernel_size[0] // 2
        radius = first_radius + last_radius
        side = 2 * radius + 1
        # [B, ny, nx, C, side, side] view of the zero-padded map: the window centred on each cell.
        padded = F.pad(features, (radius, radius, radius, radius)).permute(0, 2, 3, 1)
        windows = padded.unfold(1, side, 1).unfold(2, side, 1)
        row, col = cell // nx, cell % nx
        frame = torch.arange(batch, device=cell.device)[:, None].expand(-1, k)
        inputs = windows[frame, row, col].reshape(batch * k, channels, side, side)
        # Hidden cells inside the map: [B * k, 1, h, h] with h = 2 * last_radius + 1.
        offsets = torch.arange(-last_radius, last_radius + 1, device=cell.device)
        rows_in = ((row[..., None] + offsets) >= 0) & ((row[..., None] + offsets) < ny)
        cols_in = ((col[..., None] + offsets) >= 0) & ((col[..., None] + offsets) < nx)
        inside = (rows_in[..., :, None] & cols_in[..., None, :]).reshape(
            batch * k, 1, side - 2 * first_radius, -1
        )
        outputs = []
        for branch in branches:  # the regression groups (four or five), not cells
            first, *middle, last = branch
            hidden = F.conv2d(inputs, first.weight, first.bias)
            for layer in middle:  # norm (or Identity once folded) and ReLU, cell by cell
                hidden = layer(hidden)
            outputs.append(
                F.conv2d(hidden * inside.to(hidden.dtype), last.weight, last.bias).reshape(batch, k, -1)
            )
        return torch.cat(outputs, dim=-1)


class CenterPointHead(nn.Module):
    """CenterPoint's centre head (see the module docstring).

    ``num_classes`` and ``in_channels`` may be left out, as with
    :class:`~pc3d_det3d.anchor_head.Anchor3DHead`: ``class_names`` gives ``num_classes``, and
    :class:`~pc3d_det3d.voxelnet.VoxelDetector` derives both (``len(class_names)`` and its neck's
    output channels) and calls :meth:`complete`, which builds the layers. A head given both (or
    ``in_channels`` and ``class_names``) is complete when constructed.

    Args:
        in_channels: channels of the neck's BEV map. Default: the detector's neck's output
            channels.
        num_classes: classes (``class_names`` of the model). Default: ``len(class_names)``, else
            the detector's ``len(class_names)``.
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` of the voxelization.
        voxel_size: ``(x, y[, z])`` metres of the voxelization.
        out_size_factor: how much smaller the BEV map is than the voxel grid (2 for PointPillars
            with SECOND + FPN, 8 for the sparse encoder).
        tasks: classes per task, as class indices or as names from ``class_names``; default one
            task of all classes. Every class belongs to exactly one task.
        class_names: the model's classes, needed when ``tasks`` names classes.
        share_conv_channels: channels of the shared 3x3 conv.
        head_channels: hidden channels of every branch.
        final_kernel: kernel of each branch's last conv.
        with_velocity: regress ``vx, vy`` too (ground-truth boxes then need 9 columns).
        code_weights: L1 weight of each regression channel (8, or 10 with velocity); default 1.
        heatmap_weight: weight of the heatmap loss.
        bbox_weight: weight of the regression loss (CenterPoint: 0.25).
        gaussian_overlap: ``min_overlap`` of the Gaussian radius.
        min_radius: smallest Gaussian radius, cells.
        test_cfg: :class:`~pc3d_det3d.center_decode.CenterDecodeSettings` as a mapping.

    Attributes:
        config_key: where configs put the head (``model.bbox_head``); named in errors.
        classes_key: the config key the class count comes from (``num_classes``, ``class_names``
            of the head, or the model's ``class_names``); named in errors about per-class lists.
        grid: the BEV grid of the head's input and output.

    Raises:
        FormatError: ``class_names`` of another length than ``num_classes``, code weights of the
            wrong length, ``in_channels``/``num_classes`` below 1; when the counts are known
            (here or in :meth:`complete`): tasks that do not split ``[0, num_classes)``, a bad
            ``test_cfg``.
    """

    config_key = "model.bbox_head"
    code_weights: Tensor
    num_classes: int
    in_channels: int
    tasks: list[list[int]]
    test_cfg: CenterDecodeSettings

    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        *,
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        out_size_factor: int = 1,
        tasks: Sequence[Sequence[int | str]] | None = None,
        class_names: Sequence[str] | None = None,
        share_conv_channels: int = 64,
        head_channels: int = 64,
        final_kernel: int = 3,
        with_velocity: bool = False,
        code_weights: Sequence[float] | None = None,
        heatmap_weight: float = 1.0,
        bbox_weight: float = 0.25,
        gaussian_overlap: float = 0.1,
        min_radius: int = 2,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        key = self.config_key
        self.class_names = list(class_names) if class_names is not None else None
        if num_classes is not None and class_names is not None and len(class_names) != num_classes:
            raise FormatError(
                f"{key}.num_classes is {num_classes} but {key}.class_names lists {len(class_names)} classes "
                f"({', '.join(map(str, class_names))})"
            )
        # Known counts are attributes at once (the detector checks them against what it derives);
        # the others appear when complete() builds the layers.
        if num_classes is None and class_names is not None:
            num_classes, self.classes_key = len(class_names), f"{key}.class_names"
        else:
            self.classes_key = f"{key}.num_classes" if num_classes is not None else "model.class_names"
        if num_classes is not None:
            self.num_classes = _at_least_one(num_classes, f"{key}.num_classes")
        if in_channels is not None:
            self.in_channels = _at_least_one(in_channels, f"{key}.in_channels")
        self.task_settings = tasks
        self.with_velocity = with_velocity
        size = code_size(with_velocity)
        weights = [1.0] * size if code_weights is None else [float(w) for w in code_weights]
        if len(weights) != size:
            raise FormatError(
                f"{key}.code_weights: expected {size} weights (one per regression channel), got {len(weights)}"
            )
        self.register_buffer("code_weights", torch.tensor(weights), persistent=False)
        self.grid = BEVGrid(
            tuple(float(v) for v in point_cloud_range),  # type: ignore[arg-type]
            (float(voxel_size[0]) * out_size_factor, float(voxel_size[1]) * out_size_factor),
        )
        self.heatmap_weight, self.bbox_weight = heatmap_weight, bbox_weight
        self.gaussian_overlap, self.min_radius = gaussian_overlap, min_radius
        self.test_settings = test_cfg
        self.share_conv_channels, self.head_channels = share_conv_channels, head_channels
        self.final_kernel = final_kernel
        # At inference without autograd (set by pc3d.nn.fuse.optimize_for_inference):
        # predict_features computes the regression branches only at the peaks the heatmaps pick.
        self.regress_candidates_only = False
        if num_classes is not None and in_channels is not None:
            self.complete(num_classes, in_channels)

    @property
    def is_complete(self) -> bool:
        """Whether the layers are built (the class and channel counts are known)."""
        return "task_heads" in self._modules

    def complete(self, num_classes: int, in_channels: int) -> None:
        """Resolve the tasks and ``test_cfg`` for ``num_classes`` classes and build the layers
        over a map of ``in_channels`` channels.

        :class:`~pc3d_det3d.voxelnet.VoxelDetector` calls it with the counts it derives; on a
        complete head it only checks that they are the head's.

        Raises:
            FormatError: a count differs from the one the head has, a count below 1, tasks that
                do not split the classes, or a bad ``test_cfg``.
        """
        key = self.config_key
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            given = self.__dict__.get(name)
            if given is not None and given != value:
                where = (
                    f"{key}.class_names lists {given} classes"
                    if name == "num_classes" and self.classes_key == f"{key}.class_names"
                    else f"{key}.{name} is {given}"
                )
                raise FormatError(f"{where} but the detector gives the head {value}")
        if self.is_complete:
            return
        self.num_classes = _at_least_one(num_classes, f"{key}.num_classes")
        self.in_channels = _at_least_one(in_channels, f"{key}.in_channels")
        self.tasks = resolve_tasks(
            self.task_settings, self.num_classes, self.class_names, f"{key}.tasks", self.classes_key
        )
        self.test_cfg = CenterDecodeSettings.from_mapping(
            self.test_settings, self.num_classes, f"{key}.test_cfg"
        )
        self.shared_conv = ConvNormAct(self.in_channels, self.share_conv_channels, 3)
        self.task_heads = nn.ModuleList(
            TaskHead(
                self.share_conv_channels,
                len(classes),
                self.head_channels,
                self.with_velocity,
                self.final_kernel,
                -2.19,
            )
            for classes in self.tasks
        )

    def forward(self, features: Tensor) -> CenterPointOutput:
        """Per task heatmap and regression over :attr:`grid`.

        Args:
            features: ``Tensor[B, in_channels, ny, nx]``, the neck's map.

        Raises:
            FormatError: a head without layers yet (see :meth:`complete`).
            ShapeError: a map whose size is not the grid's (naming ``out_size_factor``).
        """
        features = self._checked_input(features)
        shared = self.shared_conv(features)
        outputs = [head(shared) for head in self.task_heads]
        return CenterPointOutput(tuple(o[0] for o in outputs), tuple(o[1] for o in outputs))

    def _checked_input(self, features: Tensor) -> Tensor:
        if not self.is_complete:
            raise FormatError(
                "CenterPointHead has no layers yet: give it in_channels and num_classes (or class_names), "
                "or build it as a VoxelDetector's bbox_head, which derives them"
            )
        if tuple(features.shape[-2:]) != self.grid.shape:
            raise ShapeError(
                f"{self.config_key}: the BEV map is {tuple(features.shape[-2:])} (ny, nx) but the head's grid "
                f"(point_cloud_range / voxel_size / out_size_factor) is {self.grid.shape}; check "
                f"{self.config_key}.out_size_factor"
            )
        return features

    def loss(
        self,
        output: CenterPointOutput,
        gt_boxes: Sequence[LiDARBoxes3D | Tensor],
        gt_labels: Sequence[Tensor],
    ) -> dict[str, Tensor]:
        """Heatmap focal loss and weighted L1 regression loss, summed over tasks.

        Args:
            output: the head's raw output.
            gt_boxes: per frame LiDAR boxes ``[M_i, 7]`` (``[M_i, 9]`` with velocity), bottom centre.
            gt_labels: per frame ``Long[M_i]`` in ``[0, num_classes)``.

        Returns:
            ``loss_heatmap``, ``loss_bbox`` and their weighted sum ``loss``.

        Raises:
            ShapeError: box and label lists that do not match.
            FormatError: NaN/inf boxes, sizes that are not positive, missing velocity columns, or
                a label outside ``[0, num_classes)`` (naming ``model.bbox_head.num_classes``).
        """
        boxes, labels, sample = self.flatten_gt(gt_boxes, gt_labels)
        device = output.heatmaps[0].device
        boxes, labels, sample = boxes.to(device), labels.to(device), sample.to(device)
        loss_heatmap = output.heatmaps[0].new_zeros(())
        loss_bbox = output.heatmaps[0].new_zeros(())
        for task, (index, local) in enumerate(split_by_task(labels, self.tasks)):
            heatmap, regression = output.heatmaps[task], output.regressions[task]
            targets = encode_task_targets(
                boxes[index],
                local,
                sample[index],
                heatmap.shape[0],
                heatmap.shape[1],
                self.grid,
                self.with_velocity,
                self.gaussian_overlap,
                self.min_radius,
            )
            loss_heatmap = loss_heatmap + gaussian_focal_loss(heatmap, targets.heatmap.to(heatmap))
            weight = targets.mask[:, None].to(regression) * self.code_weights[None, :, None, None]
            error = l1_loss(regression, targets.regression.to(regression), weight, reduction="sum")
            loss_bbox = loss_bbox + error / (targets.mask.sum() + 1e-4)
        total = self.heatmap_weight * loss_heatmap + self.bbox_weight * loss_bbox
        return {"loss_heatmap": loss_heatmap, "loss_bbox": loss_bbox, "loss": total}

    def flatten_gt(
        self, gt_boxes: Sequence[LiDARBoxes3D | Tensor], gt_labels: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The batch's checked boxes ``Tensor[T, 7 or 9]``, labels ``Long[T]`` and frame index ``Long[T]``."""
        if len(gt_boxes) != len(gt_labels):
            raise ShapeError(f"{len(gt_boxes)} box tensors but {len(gt_labels)} label tensors")
        columns = code_size(self.with_velocity) - 1
        tensors = [lidar_box_tensor(b, f"gt_boxes[{i}]") for i, b in enumerate(gt_boxes)]
        for index, (boxes, labels) in enumerate(zip(tensors, gt_labels)):
            if boxes.ndim != 2 or boxes.shape[1] < columns:
                what = " (with_velocity needs vx, vy)" if self.with_velocity else ""
                raise FormatError(
                    f"gt_boxes[{index}]: expected Tensor[M, {columns}]{what}, got {tuple(boxes.shape)}"
                )
            if labels.shape != (boxes.shape[0],):
                raise ShapeError(
                    f"gt_labels[{index}]: expected Long[{boxes.shape[0]}], got {tuple(labels.shape)}"
                )
        boxes = torch.cat([b[:, :columns].float() for b in tensors]) if tensors else torch.zeros(0, columns)
        labels = (
            torch.cat([lab.long().to(boxes.device) for lab in gt_labels])
            if tensors
            else torch.zeros(0, dtype=torch.long)
        )
        counts = torch.tensor([len(b) for b in tensors], device=boxes.device, dtype=torch.long)
        sample = torch.repeat_interleave(torch.arange(len(tensors), device=boxes.device), counts)
        if not bool(torch.isfinite(boxes).all()):
            raise FormatError("gt_boxes hold NaN or infinite values")
        if bool((boxes[:, 3:6] <= 0).any()):
            raise FormatError("gt_boxes: every size (x_size, y_size, z_size) must be positive")
        check_labels(labels, self.num_classes, self.classes_key)
        return boxes, labels, sample

    @torch.no_grad()
    def predict(self, output: CenterPointOutput) -> list[Detections3D]:
        """Detections per frame (see :mod:`pc3d_det3d.center_decode`), highest score first.

        Args:
            output: the head's raw output.

        Returns:
            One :class:`Detections3D` per frame: LiDAR boxes (bottom centre; 9 columns with
            velocity), scores, labels in ``[0, num_classes)``.
        """
        decoded = [
            decode_task(heatmap, regression, classes, self.grid, self.test_cfg)
            for heatmap, regression, classes in zip(output.heatmaps, output.regressions, self.tasks)
        ]
        return self._select(decoded)

    def predict_features(self, features: Tensor) -> list[Detections3D]:
        """Detections per frame straight from the neck's map: :meth:`predict` of :meth:`forward`.

        With ``regress_candidates_only`` (the inference copy) and no autograd, the shared conv
        and the heatmap branches run over the whole map, the regression branches only at the
        ``test_cfg.max_per_task`` peaks each task's heatmap picks (the same numbers to float
        rounding; on KITTI's 248 x 216 map, 500 peaks per task, the regression branches' 3x3
        convs then cost a twelfth of their dense arithmetic).
        """
        # The branches' hidden cells the peaks read; past the map's size, the dense path is cheaper.
        hidden_cells = self.test_cfg.max_per_task * self.final_kernel**2 if self.is_complete else 0
        sparse = self.regress_candidates_only and not torch.is_grad_enabled()
        if not sparse or hidden_cells >= math.prod(features.shape[-2:]):
            return self.predict(self(features))
        features = self._checked_input(features)
        shared = self.shared_conv(features)
        decoded = []
        for head, classes in zip(self.task_heads, self.tasks):
            scores, labels, cell = top_peaks(head.heatmap(shared), classes, self.test_cfg)
            boxes = peak_boxes(head.regression_at(shared, cell), cell, self.grid, shared.shape[-1])
            decoded.append((boxes, scores, labels))
        return self._select(decoded)

    def _select(self, decoded: list[tuple[Tensor, Tensor, Tensor]]) -> list[Detections3D]:
        """Each frame's detections from the tasks' decoded peaks (boxes, scores, labels)."""
        boxes = torch.cat([d[0] for d in decoded], dim=1)
        scores = torch.cat([d[1] for d in decoded], dim=1)
        labels = torch.cat([d[2] for d in decoded], dim=1)
        return [
            select_detections(boxes[b], scores[b], labels[b], self.test_cfg) for b in range(boxes.shape[0])
        ]


def resolve_tasks(
    tasks: Sequence[Sequence[int | str]] | None,
    num_classes: int,
    class_names: Sequence[str] | None,
    key: str,
    classes_key: str = "num_classes",
) -> list[list[int]]:
    """Class indices per task, checked to split ``[0, num_classes)`` exactly.

    Args:
        tasks: classes per task, as indices or names (``None``: one task of all classes).
        num_classes: the head's classes.
        class_names: the model's classes, to look up names.
        key: the config key of ``tasks``, named in errors.
        classes_key: the config key the class count comes from, named in errors.

    Raises:
        FormatError: an unknown name, names without ``class_names``, or classes missing,
            repeated or out of range.
    """
    if tasks is None:
        return [list(range(num_classes))]
    names = list(class_names) if class_names is not None else None
    resolved: list[list[int]] = []
    for position, classes in enumerate(tasks):
        indices = []
        for entry in classes:
            if isinstance(entry, str):
                if names is None:
                    raise FormatError(f"{key}[{position}]: class name {entry!r} needs the head's class_names")
                if entry not in names:
                    raise FormatError(f"{key}[{position}]: {entry!r} is not one of class_names {names}")
                indices.append(names.index(entry))
            else:
                indices.append(int(entry))
        resolved.append(indices)
    flat = sorted(i for task in resolved for i in task)
    if flat != list(range(num_classes)) or any(not task for task in resolved):
        raise FormatError(
            f"{key}: the tasks must split the {num_classes} classes ({classes_key}) into non-empty groups, each class "
            f"once; got {resolved}"
        )
    return resolved


def _at_least_one(value: int, key: str) -> int:
    if int(value) < 1:
        raise FormatError(f"{key} must be at least 1, got {value!r}")
    return int(value)
