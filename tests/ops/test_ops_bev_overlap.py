"""`boxes_overlap_bev` (separating axes) agrees with the exact BEV IoU on when boxes overlap."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import bev_overlap, box_iou_bev, boxes_overlap_bev


def _random_boxes(n: int, g: torch.Generator, span: float = 12.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * span
    z = torch.zeros(n, 1, dtype=torch.float64)
    size = torch.rand(n, 3, generator=g, dtype=torch.float64) * 3 + 0.05
    yaw = torch.rand(n, 1, generator=g, dtype=torch.float64) * 4 * math.pi - 2 * math.pi
    return torch.cat([xy, z, size, yaw], dim=1)


def test_agrees_with_the_exact_iou_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = _random_boxes(400, g), _random_boxes(300, g)
    iou = box_iou_bev(a, b)
    overlap = boxes_overlap_bev(a, b)
    assert overlap.shape == (400, 300) and overlap.dtype == torch.bool
    # Both kinds of answer occur, and they agree except where the common area is a sliver.
    assert 1000 < int(overlap.sum()) < 400 * 300 - 1000
    clear = (iou > 1e-9) | (iou == 0)
    assert torch.equal(overlap[clear], (iou > 0)[clear])


def test_hand_made_cases() -> None:
    car = torch.tensor([[0.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    others = torch.tensor(
        [
            [3.9, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],  # 0.1 m of common length: overlap
            [4.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],  # edges touch exactly: no common area
            [4.1, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0],  # a gap
            [0.0, 0.0, 5.0, 1.0, 1.0, 1.0, 0.7],  # inside (height does not matter in BEV)
            # A box turned 45 degrees off the car's (2, 1) corner: the axis-aligned bounds
            # overlap in both, only a diagonal axis separates the first.
            [2.5, 1.5, 0.0, 1.0, 1.0, 1.0, math.pi / 4],  # its edge passes beyond the corner
            [2.3, 1.3, 0.0, 1.0, 1.0, 1.0, math.pi / 4],  # the car's corner pokes into it
        ]
    )
    assert boxes_overlap_bev(car, others).tolist() == [[True, False, False, True, False, True]]
    assert boxes_overlap_bev(car, others).tolist() == [(box_iou_bev(car, others) > 0).squeeze(0).tolist()]
    # Symmetric, and 5-column BEV boxes are accepted.
    assert torch.equal(boxes_overlap_bev(others, car), boxes_overlap_bev(car, others).t())
    bev = car[:, [0, 1, 3, 4, 6]]
    assert torch.equal(boxes_overlap_bev(bev, others), boxes_overlap_bev(car, others))


def test_blocks_of_rows_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    a, b = _random_boxes(50, g), _random_boxes(40, g)
    whole = boxes_overlap_bev(a, b)
    monkeypatch.setattr(bev_overlap, "_BLOCK_PAIRS", 7 * 40)  # blocks of 7 rows
    assert torch.equal(boxes_overlap_bev(a, b), whole)


def test_empty_inputs_and_bad_input() -> None:
    box = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    assert boxes_overlap_bev(torch.zeros(0, 7), box).shape == (0, 1)
    assert boxes_overlap_bev(box, torch.zeros(0, 7)).shape == (1, 0)
    with pytest.raises(ShapeError, match=r"b must have shape \(N, 7\+C\) or \(N, 5\) BEV boxes"):
        boxes_overlap_bev(box, torch.zeros(2, 4))
    bad = box.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(FormatError, match="a"):
        boxes_overlap_bev(bad, box)
