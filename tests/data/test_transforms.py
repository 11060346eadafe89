"""Augmentations move points and boxes together; GT sampling never pastes overlapping boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.data.gt_database import GTDatabase, ObjectSample, build_gt_database
from pc3d.data.sample import Sample3D
from pc3d.data.transforms import (
    Compose,
    GlobalRotScaleTrans,
    ObjectNoise,
    ObjectRangeFilter,
    PointShuffle,
    PointsRangeFilter,
    RandomFlip3D,
)
from pc3d.errors import FormatError
from pc3d.ops import box_iou_bev
from pc3d.structures import LiDARBoxes3D, LiDARPoints

RANGE = [0.0, -20.0, -3.0, 40.0, 20.0, 1.0]


def _scene(seed: int = 0) -> Sample3D:
    """Three boxes, each filled with 50 points, plus 300 background points."""
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.tensor(
        [
            [10.0, 2.0, -1.7, 4.0, 1.7, 1.5, 0.3],
            [20.0, -5.0, -1.7, 0.8, 0.6, 1.7, 1.0],
            [30.0, 8.0, -1.7, 1.8, 0.6, 1.7, -0.5],
        ]
    )
    inside = []
    for box in boxes:  # three boxes: test data
        local = (torch.rand(50, 3, generator=gen) - 0.5) * 0.9 * box[3:6]
        local[:, 2] += box[5] / 2
        c, s = math.cos(box[6]), math.sin(box[6])
        xy = torch.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c], 1)
        inside.append(torch.cat([xy + box[:2], local[:, 2:3] + box[2]], 1))
    background = torch.rand(300, 3, generator=gen) * torch.tensor([40.0, 40.0, 0.3]) + torch.tensor(
        [0.0, -20.0, -2.1]
    )
    xyz = torch.cat(inside + [background])
    points = torch.cat([xyz, torch.rand(xyz.shape[0], 1, generator=gen)], 1)
    return Sample3D(
        LiDARPoints(points, points_dim=4),
        LiDARBoxes3D(boxes),
        torch.tensor([0, 1, 2]),
        "f0",
        {"difficulty": torch.tensor([0, 1, 2])},
    )


def _owner_counts(sample: Sample3D) -> list[int]:
    owner = sample.gt_boxes.points_in_boxes_part(sample.points)
    return torch.bincount(owner[owner >= 0], minlength=len(sample.gt_boxes)).tolist()


def test_global_rot_scale_trans_moves_points_with_boxes() -> None:
    torch.manual_seed(1)
    sample = _scene()
    before = _owner_counts(sample)
    GlobalRotScaleTrans(rot_range=(0.5, 0.5), scale_ratio_range=(1.1, 1.1), translation_std=(0.5, 0.5, 0.1))(
        sample
    )
    assert _owner_counts(sample) == before == [50, 50, 50]
    assert sample.gt_boxes.tensor[0, 6].item() == pytest.approx(0.8, abs=1e-6)
    assert sample.gt_boxes.tensor[0, 3].item() == pytest.approx(4.4, abs=1e-5)


def test_flip_moves_points_with_boxes() -> None:
    sample = _scene()
    original = sample.gt_boxes.tensor.clone()
    RandomFlip3D(flip_ratio_bev_horizontal=1.0)(sample)
    assert sample.gt_boxes.tensor[:, 1].tolist() == pytest.approx((-original[:, 1]).tolist())
    assert sample.gt_boxes.tensor[:, 6].tolist() == pytest.approx((-original[:, 6]).tolist())
    assert _owner_counts(sample) == [50, 50, 50]


def test_object_noise_moves_each_box_with_its_points_and_never_overlaps() -> None:
    torch.manual_seed(0)
    sample = _scene()
    original = sample.gt_boxes.tensor.clone()
    ObjectNoise(translation_std=(1.0, 1.0, 0.0), rot_range=(-0.3, 0.3))(sample)
    assert not torch.allclose(sample.gt_boxes.tensor, original)
    assert _owner_counts(sample) == [50, 50, 50]
    iou = box_iou_bev(sample.gt_boxes.tensor, sample.gt_boxes.tensor)
    iou.fill_diagonal_(0)
    assert float(iou.max()) == 0.0


def test_object_noise_refuses_moves_into_a_neighbour() -> None:
    torch.manual_seed(0)
    boxes = LiDARBoxes3D(torch.tensor([[10.0, 0, -1.7, 4, 1.7, 1.5, 0], [10.0, 1.8, -1.7, 4, 1.7, 1.5, 0]]))
    sample = Sample3D(LiDARPoints(torch.zeros(0, 4), points_dim=4), boxes, torch.tensor([0, 0]))
    ObjectNoise(translation_std=(2.0, 2.0, 0.0), num_try=5)(sample)
    iou = box_iou_bev(sample.gt_boxes.tensor, sample.gt_boxes.tensor)
    assert float(iou[0, 1]) == 0.0


def test_range_filters_and_shuffle() -> None:
    sample = _scene()
    ObjectRangeFilter([0, -20, -3, 25, 20, 1])(sample)
    assert len(sample.gt_boxes) == 2 and sample.extras["difficulty"].tolist() == [0, 1]
    PointsRangeFilter([0, -20, -3, 25, 20, 1])(sample)
    assert float(sample.points.tensor[:, 0].max()) < 25
    count = len(sample.points)
    torch.manual_seed(3)
    Compose([PointShuffle()])(sample)
    assert len(sample.points) == count and _owner_counts(sample) == [50, 50]
    with pytest.raises(FormatError, match="min < max"):
        PointsRangeFilter([0, 0, 0, 0, 1, 1])


def test_gt_database_round_trip_and_sampling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_gt_database(
        [_scene(0), _scene(1)], tmp_path / "db.npz", ["Car", "Pedestrian", "Cyclist"], RANGE, source="test"
    )
    db = GTDatabase.load(path)
    assert db.num_points.tolist() == [50] * 6 and db.labels.tolist() == [0, 1, 2, 0, 1, 2]
    # Points are stored relative to their box's bottom centre.
    assert float(db.points[:50, :3].abs().max()) < 2.5
    torch.manual_seed(0)
    sampler = ObjectSample(str(path), ["Car", "Pedestrian", "Cyclist"], RANGE, {"Car": 4, "Pedestrian": 3})
    empty = Sample3D(
        LiDARPoints(torch.zeros(0, 4), points_dim=4),
        LiDARBoxes3D(torch.zeros(0, 7)),
        torch.zeros(0, dtype=torch.long),
        extras={"difficulty": torch.zeros(0, dtype=torch.long)},
    )
    out = sampler(empty)
    # The database holds its objects at two copies of the same places: overlapping candidates
    # never both get pasted.
    # Two copies of one car and of one pedestrian are drawn; one of each overlapping pair stays.
    assert sorted(out.gt_labels.tolist()) == [0, 1]
    iou = box_iou_bev(out.gt_boxes.tensor, out.gt_boxes.tensor)
    iou.fill_diagonal_(0)
    assert float(iou.max()) == 0.0
    assert _owner_counts(out) == [50] * len(out.gt_boxes)
    assert out.extras["difficulty"].shape == (len(out.gt_boxes),)
    # A frame whose boxes take those places gets nothing pasted on top of them.
    full = sampler(_scene(0))
    iou = box_iou_bev(full.gt_boxes.tensor, full.gt_boxes.tensor)
    iou.fill_diagonal_(0)
    assert float(iou.max()) == 0.0 and len(full.gt_boxes) == 3


def test_gt_database_for_other_classes_or_range_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_gt_database([_scene()], tmp_path / "db.npz", ["Car", "Pedestrian", "Cyclist"], RANGE)
    with pytest.raises(FormatError, match=r"built for classes \['Car', 'Pedestrian', 'Cyclist'\].*\['Car'\]"):
        GTDatabase.load(path, ["Car"], RANGE)
    with pytest.raises(FormatError, match="built for point_cloud_range"):
        GTDatabase.load(path, ["Car", "Pedestrian", "Cyclist"], [0, -40, -3, 70.4, 40, 1])
    with pytest.raises(
        FileNotFoundError, match=r"pc3d data gt-database CONFIG` \(the training config, with the same --set"
    ):
        GTDatabase.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="not readable"):
        GTDatabase.load(tmp_path / "bad.npz")
    assert np.load(path)["points"].dtype == np.float32
