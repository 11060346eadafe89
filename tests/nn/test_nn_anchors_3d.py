"""3D anchors (and the anchor interface they share with 2D), the 3D residual box coder and the
max-IoU assigner with a 3D overlap function."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.anchors import AnchorGenerator, AnchorGeneratorLike
from pc3d.nn.anchors_3d import AnchorGenerator3D
from pc3d.nn.assigners import MaxIoUAssigner
from pc3d.nn.box_coders import DeltaXYZWLHRBBoxCoder

KITTI_RANGES = [
    [0, -39.68, -0.6, 69.12, 39.68, -0.6],
    [0, -39.68, -0.6, 69.12, 39.68, -0.6],
    [0, -39.68, -1.78, 69.12, 39.68, -1.78],
]
KITTI_SIZES = [[0.8, 0.6, 1.73], [1.76, 0.6, 1.73], [3.9, 1.6, 1.56]]


def test_anchor_layout_is_location_major_size_then_rotation() -> None:
    gen = AnchorGenerator3D(KITTI_RANGES, KITTI_SIZES, rotations=[0, 1.57])
    (anchors,) = gen.grid_anchors([(248, 216)])
    assert gen.num_levels == 1 and gen.num_base_anchors == [6]
    assert anchors.shape == (248 * 216 * 6, 7)
    grid = anchors.reshape(248, 216, 3, 2, 7)
    # Cell centres: 69.12 m over 216 columns -> 0.32 m cells, first centre at 0.16 m.
    assert grid[0, 0, 0, 0, 0].item() == pytest.approx(0.16, abs=1e-5)
    assert grid[0, 1, 0, 0, 0].item() == pytest.approx(0.48, abs=1e-5)
    assert grid[0, 0, 0, 0, 1].item() == pytest.approx(-39.52, abs=1e-5)
    assert grid[1, 0, 0, 0, 1].item() == pytest.approx(-39.20, abs=1e-5)
    assert grid[-1, -1, 0, 0, :2].tolist() == pytest.approx([68.96, 39.52], abs=1e-4)
    # Sizes per size index (one per class), heights per range, rotations innermost.
    assert grid[5, 7, 2, 1].tolist() == pytest.approx(
        [grid[5, 7, 2, 1, 0].item(), grid[5, 7, 2, 1, 1].item(), -1.78, 3.9, 1.6, 1.56, 1.57]
    )
    assert grid[5, 7, 0, 0, 2:6].tolist() == pytest.approx([-0.6, 0.8, 0.6, 1.73])
    assert grid[..., 6].unique().tolist() == pytest.approx([0.0, 1.57])


def test_anchor_align_corner_and_shared_range() -> None:
    gen = AnchorGenerator3D(
        [[0, 0, -1, 4, 2, -1]], [[1, 1, 1], [2, 1, 1]], rotations=[0.0], align_corner=True
    )
    anchors = gen.grid_anchors([(2, 4)])[0].reshape(2, 4, 2, 7)
    assert anchors[0, :, 0, 0].tolist() == pytest.approx([0, 1, 2, 3])
    assert anchors[:, 0, 1, 1].tolist() == pytest.approx([0, 1])
    assert anchors[1, 3, 1, 3:6].tolist() == pytest.approx([2, 1, 1])


def test_anchor_config_errors() -> None:
    with pytest.raises(FormatError, match="one per size"):
        AnchorGenerator3D(KITTI_RANGES[:2], KITTI_SIZES)
    with pytest.raises(FormatError, match=r"sizes\[1\]"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1], [1, 1]])
    with pytest.raises(FormatError, match="positive"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, -1, 1]])
    with pytest.raises(FormatError, match=r"featmap_sizes\[0\]"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1]]).grid_anchors([(0, 3)])
    with pytest.raises(FormatError, match=r"one per level.*\[\(4, 3\)\]"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1]]).grid_anchors((4, 3))  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="2 feature map sizes for 1 anchor levels"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1]]).grid_anchors([(4, 3), (2, 2)])
    with pytest.raises(FormatError, match=r"scales\[1\] must be a positive number"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1]], scales=[1.0, 0.0])
    with pytest.raises(FormatError, match="not both"):
        AnchorGenerator3D(KITTI_RANGES[:1], [[1, 1, 1]], scale=2.0, scales=[1.0])


def test_both_anchor_generators_share_the_anchor_interface() -> None:
    flat = AnchorGenerator(strides=[8, 16], ratios=[0.5, 1.0], scales=[4.0])
    bev = AnchorGenerator3D(KITTI_RANGES, KITTI_SIZES, rotations=[0, 1.57], scales=[1.0, 2.0])
    for gen in (flat, bev):
        assert isinstance(gen, AnchorGeneratorLike)
    assert not isinstance(object(), AnchorGeneratorLike)
    assert bev.num_levels == 2 and bev.num_base_anchors == [6, 6]
    fine, coarse = bev.grid_anchors([(248, 216), (124, 108)])
    assert fine.shape == (248 * 216 * 6, 7) and coarse.shape == (124 * 108 * 6, 7)
    assert fine.dtype == coarse.dtype == torch.float32
    # The first level is the one-level generator's; the second tiles the same ranges with
    # cells twice as large and sizes scaled by 2 (MMDetection3D's range generator per level).
    one_level = AnchorGenerator3D(KITTI_RANGES, KITTI_SIZES, rotations=[0, 1.57]).grid_anchors([(248, 216)])[
        0
    ]
    assert torch.equal(fine, one_level)
    grid = coarse.reshape(124, 108, 3, 2, 7)
    assert grid[0, 0, 0, 0, :2].tolist() == pytest.approx([0.32, -39.36], abs=1e-5)
    assert grid[3, 4, 2, 1, 3:].tolist() == pytest.approx([7.8, 3.2, 3.12, 1.57])
    assert grid[3, 4, 0, 0, 2].item() == pytest.approx(-0.6)
    # Both return one tensor per level, 4 columns in 2D and 7 in 3D.
    assert [a.shape[1] for a in flat.grid_anchors([(3, 3), (2, 2)])] == [4, 4]


def test_coder_known_value_and_round_trip() -> None:
    coder = DeltaXYZWLHRBBoxCoder()
    anchor = torch.tensor([[10.0, 2.0, -1.78, 3.9, 1.6, 1.56, 0.0]])
    box = torch.tensor([[10.0 + math.hypot(3.9, 1.6), 2.0, -1.78, 3.9 * math.e, 1.6, 1.56, 0.5]])
    deltas = coder.encode(anchor, box)
    # dz compares gravity centres: (z + h/2) - (z_a + h_a/2) over h_a.
    assert deltas[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5], abs=1e-6)
    torch.manual_seed(0)
    anchors = torch.rand(100, 7) * torch.tensor([70, 80, 2, 4, 2, 2, 3]) + torch.tensor(
        [0, -40, -2, 0.5, 0.5, 0.5, -1.5]
    )
    boxes = anchors + torch.randn(100, 7) * 0.2
    boxes[:, 3:6] = boxes[:, 3:6].abs() + 0.1
    assert torch.allclose(coder.decode(anchors, coder.encode(anchors, boxes)), boxes, atol=1e-5)


def test_coder_extra_values_and_shape_errors() -> None:
    coder = DeltaXYZWLHRBBoxCoder(code_size=9)
    anchors = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0, 1.0, -1.0]])
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0, 3.0, 2.0]])
    assert coder.encode(anchors, boxes)[0, 7:].tolist() == [2.0, 3.0]
    with pytest.raises(ShapeError):
        coder.encode(anchors[:, :7], boxes[:, :7])
    with pytest.raises(FormatError):
        DeltaXYZWLHRBBoxCoder(code_size=6)


def test_max_iou_assigner_with_a_3d_overlap_function() -> None:
    def centre_distance_overlap(gt: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + torch.cdist(gt[:, :2], boxes[:, :2]))

    assigner = MaxIoUAssigner(
        pos_iou_thr=0.6, neg_iou_thr=0.3, min_pos_iou=0.3, iou_calculator=centre_distance_overlap
    )
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0], [0.5, 0, 0, 1, 1, 1, 0], [5.0, 0, 0, 1, 1, 1, 0]])
    gt = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0]])
    result = assigner.assign(boxes, gt, torch.tensor([2]))
    assert result.gt_inds.tolist() == [1, 1, 0]
    assert result.labels is not None and result.labels.tolist() == [2, 2, -1]
    with pytest.raises(ShapeError):
        assigner.assign(boxes, gt[:, :5])
    with pytest.raises(FormatError, match="ignore regions"):
        MaxIoUAssigner(0.6, 0.3, ignore_iof_thr=0.5, iou_calculator=centre_distance_overlap)
