"""Points in boxes: the sparse search equals the all-pairs test on a real scan and edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import points_in_boxes, points_in_boxes_first, points_in_boxes_mask

from ._reference import dense_points_in_boxes

SCAN = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "velodyne" / "000001.bin"


@pytest.fixture(scope="module")
def scan() -> torch.Tensor:
    return torch.from_numpy(np.fromfile(SCAN, dtype=np.float32).reshape(-1, 4))


def _boxes_on_scan(scan: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centre = scan[torch.randint(0, len(scan), (n,), generator=g), :3]
    size = torch.tensor([3.9, 1.6, 1.6]) * (0.5 + torch.rand(n, 3, generator=g))
    yaw = torch.rand(n, 1, generator=g) * 2 * torch.pi - torch.pi
    return torch.cat([centre - torch.tensor([0, 0, 0.8]), size, yaw], dim=1)


def test_sparse_search_equals_all_pairs_on_a_real_scan(scan: torch.Tensor) -> None:
    boxes = _boxes_on_scan(scan, 40, 0)
    # Plus: overlapping copies, a huge box, a zero-size box, boxes far outside the cloud.
    extra = torch.tensor(
        [
            [10.0, 2.0, -1.8, 40.0, 30.0, 3.0, 0.4],
            [5.0, 5.0, -1.0, 0.0, 0.0, 0.0, 0.0],
            [500.0, 500.0, 0.0, 4.0, 2.0, 2.0, 0.0],
            [-500.0, 0.0, -1.0, 4.0, 2.0, 2.0, 1.0],
        ]
    )
    boxes = torch.cat([boxes, boxes[:5] + torch.tensor([0.3, 0.2, 0, 0, 0, 0, 0.1]), extra])
    expected = dense_points_in_boxes(scan, boxes)
    mask = points_in_boxes_mask(scan, boxes)
    assert torch.equal(mask, expected)
    assert expected.sum() > 10000 and expected[:, -2:].sum() == 0
    first = points_in_boxes_first(scan, boxes)
    hit = expected.any(dim=1)
    assert torch.equal(first[hit], expected.to(torch.uint8).argmax(dim=1)[hit])
    assert (first[~hit] == -1).all()
    assert torch.equal(points_in_boxes(scan, boxes), first)
    assert torch.equal(points_in_boxes(scan, boxes, mode="all"), mask)


def test_points_on_faces_count_as_inside() -> None:
    box = torch.tensor([[0.0, 0.0, 0.0, 2.0, 4.0, 1.0, 0.0]])
    points = torch.tensor(
        [
            [1.0, 0.0, 0.5],
            [-1.0, 2.0, 0.0],
            [0.0, -2.0, 1.0],
            [1.0001, 0.0, 0.5],
            [0.0, 0.0, -1e-4],
            [0.0, 0.0, 1.0001],
        ]
    )
    assert points_in_boxes(points, box).tolist() == [0, 0, 0, -1, -1, -1]
    assert torch.equal(points_in_boxes(points, box, mode="all"), dense_points_in_boxes(points, box))


def test_random_clouds_and_boxes_equal_all_pairs() -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        points = torch.randn(5000, 3, generator=g) * 10
        n = int(torch.randint(1, 60, (1,), generator=g))
        boxes = torch.cat(
            [
                torch.randn(n, 3, generator=g) * 8,
                torch.rand(n, 3, generator=g) * 8,
                torch.randn(n, 1, generator=g) * 3,
            ],
            1,
        )
        assert torch.equal(points_in_boxes_mask(points, boxes), dense_points_in_boxes(points, boxes))
    points64 = torch.randn(3000, 3, generator=g, dtype=torch.float64)
    boxes64 = torch.tensor([[0.0, 0.0, -1.0, 1.5, 1.0, 2.0, 0.7]], dtype=torch.float64)
    assert torch.equal(points_in_boxes_mask(points64, boxes64), dense_points_in_boxes(points64, boxes64))


def test_box_and_point_structures_are_refused(scan: torch.Tensor) -> None:
    """Structures (any system) go through boxes.points_in_boxes_part in pc3d.structures."""

    class NotATensor:
        tensor = scan

    boxes = _boxes_on_scan(scan, 3, 1)
    with pytest.raises(FormatError, match="points must be a Tensor.*points_in_boxes_part"):
        points_in_boxes(NotATensor(), boxes)
    with pytest.raises(FormatError, match="boxes must be a Tensor.*points_in_boxes_part"):
        points_in_boxes(scan, NotATensor())


def test_empty_and_bad_input() -> None:
    boxes = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert points_in_boxes(torch.zeros(0, 3), boxes).shape == (0,)
    assert points_in_boxes(torch.zeros(0, 4), boxes, mode="all").shape == (0, 1)
    assert points_in_boxes(torch.rand(5, 3), torch.zeros(0, 7)).tolist() == [-1] * 5
    assert points_in_boxes(torch.rand(5, 3), torch.zeros(0, 7), mode="all").shape == (5, 0)
    with pytest.raises(FormatError, match="mode"):
        points_in_boxes(torch.rand(5, 3), boxes, mode="any")
    nan_box = boxes.clone()
    nan_box[0, 3] = float("nan")
    with pytest.raises(FormatError, match="x_size"):
        points_in_boxes(torch.rand(5, 3), nan_box)
    nan_points = torch.rand(5, 3)
    nan_points[2, 2] = float("nan")
    with pytest.raises(FormatError, match="row 2"):
        points_in_boxes(nan_points, boxes)
    with pytest.raises(ShapeError):
        points_in_boxes(torch.rand(5, 2), boxes)
    # The raw kernels stay permissive (callers validated already): NaN boxes hold no point.
    assert points_in_boxes_first(torch.rand(5, 3), nan_box).tolist() == [-1] * 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(scan: torch.Tensor) -> None:
    boxes = _boxes_on_scan(scan, 40, 2)
    assert torch.equal(points_in_boxes(scan.cuda(), boxes.cuda()).cpu(), points_in_boxes(scan, boxes))
    assert torch.equal(
        points_in_boxes(scan.cuda(), boxes.cuda(), mode="all").cpu(), points_in_boxes(scan, boxes, mode="all")
    )
