"""Rotated IoU (BEV and 3D) against shapely on thousands of pairs, including the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.ops import bev_intersection_area, box_iou_3d, box_iou_bev
from pc3d.ops.bev_area import bev_iou_upper_bound

from ._reference import PairBlocks, clustered_boxes, shapely_area, shapely_iou_3d, shapely_iou_bev


def _random_bev(n: int, g: torch.Generator, span: float = 4.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * span
    size = torch.rand(n, 2, generator=g, dtype=torch.float64) * 3
    yaw = torch.rand(n, 1, generator=g, dtype=torch.float64) * 4 * math.pi - 2 * math.pi
    return torch.cat([xy, size, yaw], dim=1)


def _edge_case_pairs(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, slice]]:
    """Pairs (a, b) of BEV boxes: random, then blocks of named edge cases."""
    n = 500
    cases = PairBlocks()
    cases.add("random", _random_bev(3000, g), _random_bev(3000, g))
    base = _random_bev(n, g)
    cases.add("identical", base, base.clone())
    turned = base.clone()
    turned[:, 4] += math.pi  # the same rectangle described with the opposite heading
    cases.add("identical_turned_pi", base, turned)
    swapped = base.clone()
    swapped[:, [2, 3]] = base[:, [3, 2]]
    swapped[:, 4] += math.pi / 2  # the same rectangle with sizes swapped and a quarter turn
    cases.add("identical_swapped", base, swapped)
    nested = base.clone()
    nested[:, 2:4] *= torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.9
    cases.add("nested", base, nested)
    # Touching along a full edge / a partial edge / at one corner (any common heading).
    shift = base.clone()
    direction = torch.stack([torch.cos(base[:, 4]), torch.sin(base[:, 4])], 1)
    shift[:, :2] += direction * base[:, 2:3]
    cases.add("touching_edge", base, shift)
    partial = shift.clone()
    normal = torch.stack([-torch.sin(base[:, 4]), torch.cos(base[:, 4])], 1)
    partial[:, :2] += normal * base[:, 3:4] * 0.5
    cases.add("touching_partial_edge", base, partial)
    corner = shift.clone()
    corner[:, :2] += normal * base[:, 3:4]
    cases.add("touching_corner", base, corner)
    # Sharing an edge line while overlapping (collinear edges inside the intersection).
    half_over = base.clone()
    half_over[:, :2] += direction * base[:, 2:3] * 0.5
    cases.add("collinear_overlap", base, half_over)
    near = base + torch.randn(n, 5, generator=g, dtype=torch.float64) * 1e-9
    near[:, 2:4] = near[:, 2:4].abs()
    cases.add("near_identical", base, near)
    zero_all = cases.add_degenerate(base, base)
    cases.add("both_zero", zero_all, zero_all.clone())
    far = base.clone()
    far[:, :2] += 1000.0  # large coordinates: precision must not depend on the offset
    far_b = _random_bev(n, g)
    far_b[:, :2] += 1000.0
    cases.add("far_from_origin", far, far_b)
    cross = base.clone()
    cross[:, 2], cross[:, 3] = base[:, 2] * 3, base[:, 3] / 4
    cross_b = cross.clone()
    cross_b[:, 4] += math.pi / 2
    cases.add("cross_shaped", cross, cross_b)
    return cases.pairs()


def test_intersection_area_matches_shapely_including_edge_cases() -> None:
    g = torch.Generator().manual_seed(0)
    a, b, blocks = _edge_case_pairs(g)
    ours = bev_intersection_area(a, b).numpy()
    ref = shapely_area(a.numpy(), b.numpy())
    for name, rows in blocks.items():
        err = np.abs(ours[rows] - ref[rows]).max()
        assert err < 1e-9, f"{name}: area error {err}"
    # The edge cases really are what they claim.
    assert np.allclose(ours[blocks["touching_edge"]], 0, atol=1e-9)
    assert np.allclose(ours[blocks["zero_size"]], 0)
    assert np.allclose(
        ours[blocks["identical_swapped"]], (a[:, 2] * a[:, 3]).numpy()[blocks["identical_swapped"]]
    )


def test_aligned_iou_matches_shapely_float64_and_float32() -> None:
    g = torch.Generator().manual_seed(1)
    a, b, blocks = _edge_case_pairs(g)
    ref = shapely_iou_bev(a.numpy(), b.numpy())
    ours = box_iou_bev(a, b, aligned=True)
    assert ours.dtype == torch.float64 and ours.shape == (len(a),)
    for name, rows in blocks.items():
        assert np.abs(ours.numpy()[rows] - ref[rows]).max() < 1e-7, name
    assert np.allclose(ours.numpy()[blocks["identical"]], 1.0)
    assert np.allclose(ours.numpy()[blocks["both_zero"]], 0.0)
    # float32 boxes: computed in float64 internally, error well under 1e-5.
    a32, b32 = a.float(), b.float()
    ref32 = shapely_iou_bev(a32.double().numpy(), b32.double().numpy())
    ours32 = box_iou_bev(a32, b32, aligned=True)
    assert ours32.dtype == torch.float32
    assert np.abs(ours32.double().numpy() - ref32).max() < 1e-5


def test_cheap_upper_bound_never_undercuts_the_exact_iou() -> None:
    """NMS skips clipping pairs whose bound is below the threshold: the bound must hold."""
    g = torch.Generator().manual_seed(6)
    a, b, blocks = _edge_case_pairs(g)
    exact = box_iou_bev(a, b, aligned=True)
    bound = bev_iou_upper_bound(a, b)
    assert bool((bound * (1 + 1e-9) + 1e-12 >= exact).all())
    # ... and it is informative: most random pairs are ruled out for a 0.5 threshold.
    assert (bound[blocks["random"]] < 0.5).float().mean() > 0.7


def test_known_values() -> None:
    square = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    half_shift = torch.tensor([[1.0, 0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    assert box_iou_bev(square, half_shift).item() == pytest.approx(2 / 6)
    diamond = torch.tensor([[0.0, 0.0, 2.0, 2.0, math.pi / 4]], dtype=torch.float64)
    octagon = 8 * (math.sqrt(2) - 1)  # area of a square of side 2 and its 45-degree copy
    assert box_iou_bev(square, diamond).item() == pytest.approx(octagon / (8 - octagon), rel=1e-12)
    # 3D: same footprint, heights [0, 2] and [1, 4]: overlap 1 m, volumes 8 and 12.
    a3 = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]])
    b3 = torch.tensor([[0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 0.3]])
    b3_same = b3.clone()
    b3_same[0, 6] = 0.0
    assert box_iou_3d(a3, b3_same).item() == pytest.approx(4 / (8 + 12 - 4), rel=1e-6)


def test_pairwise_equals_aligned_and_shapely_on_clustered_boxes() -> None:
    g = torch.Generator().manual_seed(2)
    a, _ = clustered_boxes(300, 20, g)
    b, _ = clustered_boxes(250, 20, g)
    b[:, :2] = a[torch.randint(0, 300, (250,), generator=g), :2] + torch.randn(250, 2, generator=g)
    iou = box_iou_bev(a, b)
    assert iou.shape == (300, 250) and iou.dtype == torch.float32
    assert (iou > 0).sum() > 500  # many overlapping pairs, many pruned ones
    i, j = torch.meshgrid(torch.arange(300), torch.arange(250), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    bev_a, bev_b = a[:, [0, 1, 3, 4, 6]].double(), b[:, [0, 1, 3, 4, 6]].double()
    ref = shapely_iou_bev(bev_a[i].numpy(), bev_b[j].numpy()).reshape(300, 250)
    assert np.abs(iou.double().numpy() - ref).max() < 1e-5
    assert torch.allclose(box_iou_bev(b, a), iou.T, atol=1e-6)  # symmetric up to rounding
    iou3 = box_iou_3d(a, b)
    ref3 = shapely_iou_3d(a.double()[i].numpy(), b.double()[j].numpy()).reshape(300, 250)
    assert np.abs(iou3.double().numpy() - ref3).max() < 1e-5
    diagonal = iou3[torch.arange(250), torch.arange(250)]
    assert torch.equal(diagonal, box_iou_3d(a[:250], b, aligned=True))  # same kernel, same numbers


def test_3d_iou_matches_shapely_on_random_boxes() -> None:
    g = torch.Generator().manual_seed(3)
    n = 3000
    bev_a, bev_b = _random_bev(n, g, span=3.0), _random_bev(n, g, span=3.0)
    za, zb = (
        torch.rand(n, 2, generator=g, dtype=torch.float64) * 2,
        torch.rand(n, 2, generator=g, dtype=torch.float64) * 2,
    )
    a = torch.stack([bev_a[:, 0], bev_a[:, 1], za[:, 0], bev_a[:, 2], bev_a[:, 3], za[:, 1], bev_a[:, 4]], 1)
    b = torch.stack([bev_b[:, 0], bev_b[:, 1], zb[:, 0], bev_b[:, 2], bev_b[:, 3], zb[:, 1], bev_b[:, 4]], 1)
    b[:300] = a[:300]
    ours = box_iou_3d(a, b, aligned=True).numpy()
    ref = shapely_iou_3d(a.numpy(), b.numpy())
    # 1e-7: the reference's 1e-12 snap grid is felt in the IoU of millimetre-sized boxes.
    assert np.abs(ours - ref).max() < 1e-7
    assert np.allclose(ours[:300], 1.0)


def test_box_structures_are_refused_with_a_pointer_to_their_methods() -> None:
    """The ops take z-up tensors only; structures (any system) call them via Boxes3D.overlaps."""

    class NotATensor:  # stands in for a box structure: pc3d.ops never imports pc3d.structures
        tensor = torch.zeros(1, 7)

    boxes = torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]])
    for fn in (box_iou_bev, box_iou_3d):
        with pytest.raises(
            FormatError, match=r"Tensor\[N, 7\+C\] of z-up boxes, got NotATensor.*Boxes3D.overlaps"
        ):
            fn(NotATensor(), boxes)
        with pytest.raises(FormatError, match="b must be a Tensor"):
            fn(boxes, NotATensor())


def test_iof_divides_by_the_first_box() -> None:
    a = torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    b = torch.tensor(
        [[1.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0, 4.0, 0.3]], dtype=torch.float64
    )
    # Pair 0: overlap 1 x 2 x 2 = 4 of volumes 8 and 8: IoU 4 / 12, IoF 4 / 8.
    # Pair 1: b[1] lies inside a's footprint; heights overlap 1 of a's 2: 1 x 1 x 1 = 1.
    np.testing.assert_allclose(box_iou_3d(a, b).numpy(), [[4 / 12, 1 / 11]], atol=1e-12)
    np.testing.assert_allclose(box_iou_3d(a, b, mode="iof").numpy(), [[4 / 8, 1 / 8]], atol=1e-12)
    np.testing.assert_allclose(box_iou_bev(a, b, mode="iof").numpy(), [[2 / 4, 1 / 4]], atol=1e-12)
    np.testing.assert_allclose(
        box_iou_3d(a.expand(2, -1), b, aligned=True, mode="iof").numpy(), [4 / 8, 1 / 8], atol=1e-12
    )
    # An empty first box has IoF 0, not NaN.
    assert box_iou_3d(torch.zeros(1, 7), b.float(), mode="iof").tolist() == [[0.0, 0.0]]
    with pytest.raises(FormatError, match="mode must be 'iou' or 'iof'"):
        box_iou_bev(a, b, mode="giou")


def test_gradients_flow_through_the_clipping() -> None:
    """Usable in IoU losses: analytic gradients match finite differences for generic pairs."""
    g = torch.Generator().manual_seed(8)
    a = torch.tensor(
        [[0.0, 0.0, 0.0, 2.0, 1.0, 1.0, 0.3], [1.0, 2.0, 0.5, 3.0, 1.5, 2.0, -1.0]], dtype=torch.float64
    )
    b = a + 0.3 * torch.rand(2, 7, generator=g, dtype=torch.float64)
    a.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: box_iou_3d(x, b, aligned=True), (a,))
    assert torch.autograd.gradcheck(lambda x: box_iou_bev(x, b), (a,))


def test_empty_inputs_give_empty_outputs() -> None:
    boxes = torch.rand(3, 7)
    empty = torch.zeros(0, 7)
    assert box_iou_bev(empty, boxes).shape == (0, 3)
    assert box_iou_bev(boxes, empty).shape == (3, 0)
    assert box_iou_3d(empty, empty, aligned=True).shape == (0,)
    assert bev_intersection_area(torch.zeros(0, 5), torch.zeros(0, 5)).shape == (0,)


def test_bad_input_is_rejected_with_a_clear_error() -> None:
    boxes = torch.rand(4, 7)
    nan = boxes.clone()
    nan[2, 4] = float("nan")
    with pytest.raises(FormatError, match=r"row 2: y_size"):
        box_iou_bev(nan, boxes)
    with pytest.raises(FormatError, match="b row 2"):
        box_iou_3d(boxes, nan)
    negative = boxes.clone()
    negative[1, 5] = -1
    with pytest.raises(FormatError, match="z_size"):
        box_iou_3d(negative, boxes)
    with pytest.raises(ShapeError, match=r"\(N, 7\+C\)"):
        box_iou_3d(torch.rand(4, 5), boxes)
    with pytest.raises(ShapeError):
        box_iou_bev(torch.rand(4, 6), boxes)
    with pytest.raises(ShapeError, match="aligned"):
        box_iou_bev(boxes, boxes[:3], aligned=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(5)
    a, b, _ = _edge_case_pairs(g)
    assert torch.allclose(
        bev_intersection_area(a.cuda(), b.cuda()).cpu(), bev_intersection_area(a, b), atol=1e-12
    )
    boxes, _ = clustered_boxes(500, 20, g)
    assert torch.allclose(box_iou_3d(boxes.cuda(), boxes.cuda()).cpu(), box_iou_3d(boxes, boxes), atol=1e-6)
