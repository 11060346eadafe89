"""What the det3d training tests share: the shrunk pillar and voxel networks, the shipped KITTI
frames, a few Adam steps and the check that they lowered the loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from pc3d.config import build, load_config
from pc3d_det3d.datasets import KittiDataset

#: The KITTI root shipped in tests/data (four labelled frames under ``training``).
KITTI_ROOT = Path(__file__).resolve().parents[3] / "tests" / "data" / "kitti"
CLASSES = ["Pedestrian", "Cyclist", "Car"]
#: 70.4 m x 38.4 m in front of the car, which holds the shipped frames' labelled objects.
SMALL_RANGE = [0, -19.2, -3, 70.4, 19.2, 1]
#: A pillar network (PointPillars, CenterPoint-pillar) shrunk to 0.8 m pillars (88 x 48) and
#: narrow layers: a training step takes a fraction of a second. The head keeps its own settings.
SMALL_PILLARS = [
    f"point_cloud_range={SMALL_RANGE}",
    "voxel_size=[0.8, 0.8, 4]",
    "model.voxel.max_num_points=16",
    "model.voxel_encoder.feat_channels=[16]",
    "model.middle_encoder.in_channels=16",
    "model.middle_encoder.output_shape=[48, 88]",
    "model.backbone.in_channels=16",
    "model.backbone.out_channels=[16, 16, 16]",
    "model.backbone.layer_nums=[1, 1, 1]",
    "model.neck.in_channels=[16, 16, 16]",
    "model.neck.out_channels=[16, 16, 16]",
    "model.bbox_head.in_channels=48",
]
#: A sparse voxel network (SECOND, CenterPoint-voxel) shrunk alike: 0.4 x 0.4 x 0.1 m voxels
#: (sparse grid 41 x 96 x 176, BEV 12 x 22).
SMALL_VOXELS = [
    f"point_cloud_range={SMALL_RANGE}",
    "voxel_size=[0.4, 0.4, 0.1]",
    "model.middle_encoder.sparse_shape=[41, 96, 176]",
    "model.middle_encoder.base_channels=8",
    "model.middle_encoder.output_channels=16",
    "model.middle_encoder.encoder_channels=[[8], [8, 8, 8], [16, 16, 16], [16, 16, 16]]",
    "model.backbone.in_channels=32",
    "model.backbone.out_channels=[16, 16]",
    "model.backbone.layer_nums=[1, 1]",
    "model.neck.in_channels=[16, 16]",
    "model.neck.out_channels=[16, 16]",
    "model.bbox_head.in_channels=32",
]

#: Anchors over ``SMALL_RANGE`` (the published sizes and heights, MMDetection3D's class order).
SMALL_ANCHORS = (
    "model.bbox_head.anchor_generator.ranges=[[0, -19.2, -0.6, 70.4, 19.2, -0.6], "
    "[0, -19.2, -0.6, 70.4, 19.2, -0.6], [0, -19.2, -1.78, 70.4, 19.2, -1.78]]"
)
#: A narrow CenterPoint head.
SMALL_CENTER_HEAD = ["model.bbox_head.share_conv_channels=16", "model.bbox_head.head_channels=16"]
#: The zoo detectors shrunk: everything else (encoders, anchors, assigners, losses) is the
#: published model's, with the anchors spread over the smaller range.
SMALL_MODELS = {
    "pointpillars_hv-secfpn_kitti-3d-3class": [*SMALL_PILLARS, SMALL_ANCHORS],
    "second_hv-secfpn_kitti-3d-3class": [*SMALL_VOXELS, SMALL_ANCHORS],
    "centerpoint_pillar-secfpn_kitti-3d-3class": [*SMALL_PILLARS, *SMALL_CENTER_HEAD],
    "centerpoint_voxel-secfpn_kitti-3d-3class": [*SMALL_VOXELS, *SMALL_CENTER_HEAD],
}


def small_model(name: str) -> nn.Module:
    """The shrunk zoo detector ``name`` (a key of :data:`SMALL_MODELS`), built after seeding torch
    with 0; a sparse-voxel one is skipped without spconv."""
    if SMALL_MODELS[name][: len(SMALL_VOXELS)] == SMALL_VOXELS:
        pytest.importorskip("spconv.pytorch", reason="the sparse voxel encoder needs spconv 2")
    torch.manual_seed(0)
    return build(load_config(name, SMALL_MODELS[name]).node("model"), kind="model")


def kitti_frames(max_points: int | None = None) -> list[dict]:
    """The four shipped KITTI frames cut to ``SMALL_RANGE``, as ``KittiDataset`` gives them.

    Args:
        max_points: keep a random subset of this many points per scan (drawn after seeding torch
            with 0, so every test sees the same points); None keeps all.

    Returns:
        One sample dict per frame (``points``, ``gt_boxes``, ``gt_labels``, ...).
    """
    dataset = KittiDataset(
        str(KITTI_ROOT), class_names=CLASSES, split=None, point_cloud_range=SMALL_RANGE, max_points=max_points
    )
    torch.manual_seed(0)
    return [dataset[i] for i in range(len(dataset))]


def adam_losses(
    model: nn.Module,
    points: Sequence[torch.Tensor],
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    steps: int,
) -> list[float]:
    """Train ``model`` on one fixed batch with Adam (lr 0.01) and return the loss of every step.

    Args:
        model: a detector with ``loss(points, boxes, labels) -> {"loss": ..., ...}``.
        points: the batch's point clouds.
        boxes: the batch's ground-truth boxes.
        labels: the batch's ground-truth labels.
        steps: how many optimiser steps to take.

    Returns:
        The total loss before each step, as floats.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        loss = model.loss(points, boxes, labels)
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
        losses.append(loss["loss"].item())
    return losses


def train_on_kitti_frames(
    model: nn.Module, steps: int, max_points: int | None = None
) -> tuple[list[float], list[torch.Tensor]]:
    """Train ``model`` on the four shipped KITTI frames as one batch (see :func:`adam_losses`).

    Args:
        model: a detector over ``SMALL_RANGE``.
        steps: how many optimiser steps to take.
        max_points: as for :func:`kitti_frames`.

    Returns:
        The loss of every step, and the frames' points (to predict on).
    """
    frames = kitti_frames(max_points)
    assert len(frames) == 4 and sum(len(f["gt_boxes"]) for f in frames) >= 3
    points = [f["points"] for f in frames]
    losses = adam_losses(
        model, points, [f["gt_boxes"] for f in frames], [f["gt_labels"] for f in frames], steps
    )
    return losses, points


def assert_loss_falls(losses: Sequence[float], factor: float) -> None:
    """Every loss is finite and the last is below ``factor`` times the first."""
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < factor * losses[0], losses
