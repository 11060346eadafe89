"""NMS keeps exactly what the sequential greedy sweep keeps (ties, classes, thresholds, counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pc3d.ops.pairs as pairs_module
from pc3d.errors import FormatError, ShapeError
from pc3d.ops import (
    batched_nms_2d,
    batched_nms_bev,
    box_iou_2d,
    box_iou_bev,
    circle_nms,
    nms_2d,
    nms_bev,
)

from ._reference import clustered_boxes, greedy_nms, shapely_iou_bev


def _bev_reference(boxes: torch.Tensor, thr: float) -> np.ndarray:
    """`[N, N]`: does box i suppress box j (pc3d's pairwise IoU, itself checked against shapely)."""
    return (box_iou_bev(boxes.double(), boxes.double()) > thr).numpy()


def _xyxy_reference(boxes: torch.Tensor, thr: float) -> np.ndarray:
    n = boxes.shape[0]
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    return (box_iou_2d(boxes[i.reshape(-1)], boxes[j.reshape(-1)]) > thr).reshape(n, n).numpy()


def _random_xyxy(n: int, g: torch.Generator, clusters: int = 10) -> torch.Tensor:
    centres = torch.rand(clusters, 2, generator=g) * 200
    c = centres[torch.randint(0, clusters, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 6
    wh = 5 + torch.rand(n, 2, generator=g) * 30
    return torch.cat([c - wh / 2, c + wh / 2], dim=1)


@pytest.fixture(params=["default_blocks", "tiny_blocks"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with the default block sizes and with blocks of 16 boxes, so that the
    hand-over between blocks (kept boxes of one block suppressing later ones) is exercised."""
    if request.param == "tiny_blocks":
        for name in ("_FIRST_BLOCK", "_MIN_BLOCK", "_MAX_BLOCK"):
            monkeypatch.setattr(pairs_module, name, 16)
    return request.param


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("thr", [0.0, 0.1, 0.5, 0.8])
def test_nms_bev_equals_greedy_on_clustered_boxes(seed: int, thr: float, engine: str) -> None:
    g = torch.Generator().manual_seed(seed)
    boxes, scores = clustered_boxes(600, 15, g)
    kept = nms_bev(boxes, scores, thr)
    expected = greedy_nms(scores, _bev_reference(boxes, thr))
    assert torch.equal(kept, expected)
    assert 15 <= kept.numel() < 600


def test_nms_bev_against_a_shapely_greedy_reference() -> None:
    """Independent of pc3d's IoU: the sweep with shapely's IoU keeps the same boxes."""
    g = torch.Generator().manual_seed(7)
    boxes, scores = clustered_boxes(200, 8, g)
    bev = boxes[:, [0, 1, 3, 4, 6]].double().numpy()
    i, j = np.meshgrid(np.arange(200), np.arange(200), indexing="ij")
    suppress = (shapely_iou_bev(bev[i.reshape(-1)], bev[j.reshape(-1)]) > 0.3).reshape(200, 200)
    assert torch.equal(nms_bev(boxes, scores, 0.3), greedy_nms(scores, suppress))


def test_ties_keep_the_lower_index(engine: str) -> None:
    g = torch.Generator().manual_seed(3)
    boxes, _ = clustered_boxes(500, 10, g)
    scores = torch.randint(0, 4, (500,), generator=g).float()  # massive ties
    kept = nms_bev(boxes, scores, 0.2)
    assert torch.equal(kept, greedy_nms(scores, _bev_reference(boxes, 0.2)))
    # Identical boxes with identical scores: the first one wins.
    twin = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0.3]]).repeat(3, 1)
    assert nms_bev(twin, torch.ones(3), 0.5).tolist() == [0]
    assert nms_bev(twin, torch.tensor([0.5, 0.9, 0.9]), 0.5).tolist() == [1]


def test_iou_threshold_is_strict() -> None:
    a = torch.tensor([[0.0, 0, 2, 2, 0], [1.0, 0, 2, 2, 0]], dtype=torch.float64)  # IoU exactly 1/3
    scores = torch.tensor([0.9, 0.8])
    assert nms_bev(a, scores, 1 / 3).tolist() == [0, 1]  # not > threshold: both stay
    assert nms_bev(a, scores, 0.33).tolist() == [0]
    xyxy = torch.tensor([[0.0, 0, 2, 2], [1.0, 0, 3, 2]])
    assert nms_2d(xyxy, scores, 1 / 3).tolist() == [0, 1]
    assert nms_2d(xyxy, scores, 0.3).tolist() == [0]


def test_chain_of_overlaps_needs_the_sequential_order(engine: str) -> None:
    """Boxes in a row, each overlapping the next, best first: every other box survives."""
    n = 200
    x = torch.arange(n, dtype=torch.float32) * 1.5
    boxes = torch.stack(
        [
            x,
            torch.zeros(n),
            torch.zeros(n),
            torch.full((n,), 2.0),
            torch.ones(n),
            torch.ones(n),
            torch.zeros(n),
        ],
        1,
    )
    scores = torch.linspace(1, 0, n)
    kept = nms_bev(boxes, scores, 0.1)
    assert kept.tolist() == list(range(0, n, 2))
    assert torch.equal(kept, greedy_nms(scores, _bev_reference(boxes, 0.1)))


@pytest.mark.parametrize("seed", range(2))
def test_batched_and_thresholds_and_counts(seed: int, engine: str) -> None:
    g = torch.Generator().manual_seed(seed + 10)
    boxes, scores = clustered_boxes(800, 12, g)
    labels = torch.randint(-1, 3, (800,), generator=g)  # any integer labels, even negative
    suppress = _bev_reference(boxes, 0.25)
    for kwargs in (
        {},
        {"score_threshold": 0.3},
        {"pre_max": 300},
        {"post_max": 40},
        {"score_threshold": 0.2, "pre_max": 500, "post_max": 25},
    ):
        kept = batched_nms_bev(boxes, scores, labels, 0.25, **kwargs)
        expected = greedy_nms(scores, suppress, labels=labels, **kwargs)
        assert torch.equal(kept, expected), kwargs
        plain = nms_bev(boxes, scores, 0.25, **kwargs)
        assert torch.equal(plain, greedy_nms(scores, suppress, **kwargs)), kwargs
    assert batched_nms_bev(boxes, scores, labels, 0.25).numel() > nms_bev(boxes, scores, 0.25).numel()


@pytest.mark.parametrize("seed", range(3))
def test_nms_2d_equals_greedy(seed: int, engine: str) -> None:
    g = torch.Generator().manual_seed(seed + 20)
    boxes = _random_xyxy(1500, g)
    scores = torch.rand(1500, generator=g)
    labels = torch.randint(0, 4, (1500,), generator=g)
    for thr in (0.3, 0.7):
        suppress = _xyxy_reference(boxes, thr)
        assert torch.equal(nms_2d(boxes, scores, thr), greedy_nms(scores, suppress))
        kwargs = {"score_threshold": 0.1, "pre_max": 1000, "post_max": 100}
        assert torch.equal(
            batched_nms_2d(boxes, scores, labels, thr, **kwargs),
            greedy_nms(scores, suppress, labels=labels, **kwargs),
        )


def test_box_iou_2d_known_values() -> None:
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 0, 0], [0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 0, 0], [1, 0, 2, 1]])  # corner, empty, touching
    assert torch.allclose(box_iou_2d(a, b), torch.tensor([1 / 7, 0, 0], dtype=torch.float64))
    # Intersection over the area of the first box (KITTI's DontCare test), 0 for an empty one.
    assert torch.allclose(box_iou_2d(a, b, mode="iof"), torch.tensor([1 / 4, 0, 0], dtype=torch.float64))
    assert box_iou_2d(b[:1], a[:1], mode="iof").item() == pytest.approx(1 / 4)
    with pytest.raises(FormatError, match="mode must be 'iou' or 'iof'"):
        box_iou_2d(a, b, mode="giou")


@pytest.mark.parametrize("seed", range(3))
def test_circle_nms_equals_greedy(seed: int, engine: str) -> None:
    g = torch.Generator().manual_seed(seed + 30)
    boxes, scores = clustered_boxes(1000, 20, g, spread=1.5)
    thr = 1.2

    xy = boxes[:, :2].double()
    suppress = ((xy[:, None, :] - xy[None, :, :]).square().sum(dim=2) <= thr * thr).numpy()

    assert torch.equal(circle_nms(boxes, scores, thr), greedy_nms(scores, suppress))
    assert torch.equal(circle_nms(boxes, scores, thr, post_max=30), greedy_nms(scores, suppress, post_max=30))
    # Distance exactly at the threshold suppresses (<=), as in CenterPoint.
    pts = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    assert circle_nms(pts, torch.tensor([0.9, 0.8, 0.7]), 5.0).tolist() == [0, 2]
    assert circle_nms(pts, torch.tensor([0.9, 0.8, 0.7]), math.nextafter(5.0, 0)).tolist() == [0, 1, 2]


def test_box_structures_are_refused() -> None:
    class NotATensor:
        tensor = torch.zeros(1, 7)

    with pytest.raises(FormatError, match=r"z-up boxes, got NotATensor.*nms_bev"):
        nms_bev(NotATensor(), torch.ones(1), 0.2)


def test_empty_inputs() -> None:
    for out in (
        nms_bev(torch.zeros(0, 7), torch.zeros(0), 0.5),
        nms_bev(torch.zeros(0, 5), torch.zeros(0), 0.5),
        nms_2d(torch.zeros(0, 4), torch.zeros(0), 0.5),
        batched_nms_2d(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
        circle_nms(torch.zeros(0, 2), torch.zeros(0), 1.0),
        nms_bev(torch.rand(5, 7), torch.rand(5), 0.5, score_threshold=2.0),
    ):
        assert out.dtype == torch.long and out.shape == (0,)
    assert nms_bev(torch.tensor([[0.0, 0, 0, 1, 1, 1, 0]]), torch.ones(1), 0.5).tolist() == [0]


def test_bad_input() -> None:
    boxes, scores = torch.rand(4, 7), torch.rand(4)
    nan = boxes.clone()
    nan[3, 6] = float("nan")
    with pytest.raises(FormatError, match=r"row 3: yaw"):
        nms_bev(nan, scores, 0.5)
    with pytest.raises(FormatError, match="scores"):
        nms_bev(boxes, torch.tensor([0.1, float("nan"), 0.2, 0.3]), 0.5)
    with pytest.raises(ShapeError, match="scores"):
        nms_bev(boxes, scores[:3], 0.5)
    with pytest.raises(FormatError, match="iou_threshold"):
        nms_bev(boxes, scores, 1.5)
    with pytest.raises(FormatError, match="iou_threshold"):
        nms_2d(torch.rand(4, 4).sort(dim=1).values, scores, -0.1)
    with pytest.raises(FormatError, match="x2 < x1"):
        nms_2d(torch.tensor([[2.0, 0, 1, 1]]), torch.ones(1), 0.5)
    with pytest.raises(FormatError, match="row 0: y1"):
        nms_2d(torch.tensor([[0.0, float("inf"), 1, 1]]), torch.ones(1), 0.5)
    with pytest.raises(ShapeError, match="labels"):
        batched_nms_bev(boxes, scores, torch.zeros(3, dtype=torch.long), 0.5)
    with pytest.raises(FormatError, match="labels must be integers"):
        batched_nms_bev(boxes, scores, torch.zeros(4), 0.5)
    with pytest.raises(FormatError, match="distance_threshold"):
        circle_nms(boxes, scores, float("nan"))
    with pytest.raises(FormatError, match="post_max"):
        nms_bev(boxes, scores, 0.5, post_max=-1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(50)
    boxes, scores = clustered_boxes(2000, 30, g)
    labels = torch.randint(0, 3, (2000,), generator=g)
    assert torch.equal(nms_bev(boxes.cuda(), scores.cuda(), 0.2).cpu(), nms_bev(boxes, scores, 0.2))
    assert torch.equal(
        batched_nms_bev(boxes.cuda(), scores.cuda(), labels.cuda(), 0.2).cpu(),
        batched_nms_bev(boxes, scores, labels, 0.2),
    )
    xyxy = _random_xyxy(2000, g)
    assert torch.equal(nms_2d(xyxy.cuda(), scores.cuda(), 0.5).cpu(), nms_2d(xyxy, scores, 0.5))
    assert torch.equal(circle_nms(boxes.cuda(), scores.cuda(), 1.0).cpu(), circle_nms(boxes, scores, 1.0))
