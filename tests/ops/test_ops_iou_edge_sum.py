"""The edge-sum (Green's theorem) intersection and the dense pairwise path of the rotated IoU.

The edge cases of `test_ops_iou.py` mostly share a heading (parallel edges), which goes to the
clipping path; here the same kinds of contact happen at generic angles, where the edge sum runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.ops import box_iou_3d, box_iou_bev, iou_rotated
from pc3d.ops.bev_area import PARALLEL_SINE, bev_intersection_area, clip_area, edge_sum_area

from ._reference import PairBlocks, clustered_boxes, shapely_area, shapely_iou_3d, shapely_iou_bev


def _rotated_edge_cases(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, dict[str, slice]]:
    n = 400
    cases = PairBlocks()
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 10 - 5
    size = 0.5 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 3
    yaw = torch.rand(n, 1, generator=g, dtype=torch.float64) * 4 * math.pi - 2 * math.pi
    turn = 0.05 + torch.rand(n, 1, generator=g, dtype=torch.float64) * (math.pi / 2 - 0.1)  # generic angle
    base = torch.cat([xy, size, yaw], 1)
    # Nested at any angle: a box of diameter below the other's smaller side, same centre.
    inner = base.clone()
    inner[:, 2:4] = (
        size.min(dim=1, keepdim=True).values * torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.7
    )
    inner[:, 4:5] += turn
    cases.add("nested_rotated", base, inner)
    # A square and its 45-degree copy scaled by 1/sqrt(2): corners exactly on the square's edges.
    square = base.clone()
    square[:, 3] = square[:, 2]
    diamond = square.clone()
    diamond[:, 2:4] /= math.sqrt(2)
    diamond[:, 4] += math.pi / 4
    cases.add("corners_on_edges", square, diamond)
    # Touching at one point: a diamond whose corner sits on the middle of the square's +x edge.
    outside = diamond.clone()
    heading = torch.stack([torch.cos(square[:, 4]), torch.sin(square[:, 4])], 1)
    outside[:, :2] += heading * square[:, 2:3]
    cases.add("corner_touching_edge", square, outside)
    # Corner on corner at a generic angle: b is a turned by pi + turn about a's +,+ corner, which
    # puts it in the quadrant opposite to a (as seen from that corner) turned by less than 90 deg.
    corner = torch.stack(
        [
            heading[:, 0] * base[:, 2] / 2 - heading[:, 1] * base[:, 3] / 2,
            heading[:, 1] * base[:, 2] / 2 + heading[:, 0] * base[:, 3] / 2,
        ],
        1,
    )
    pivot = base[:, :2] + corner
    c, s = torch.cos(turn), torch.sin(turn)  # centre: pivot + R(pi + turn)(-corner)
    spun = base.clone()
    spun[:, 0:1] = pivot[:, 0:1] + c * corner[:, 0:1] - s * corner[:, 1:2]
    spun[:, 1:2] = pivot[:, 1:2] + s * corner[:, 0:1] + c * corner[:, 1:2]
    spun[:, 4:5] += turn + math.pi
    cases.add("corner_on_corner", base, spun)
    crossed = base.clone()
    crossed[:, 4:5] += turn
    cases.add("same_centre_crossed", base, crossed)
    # test_ops_iou.py's zero-size cases again, at a generic angle, where the edge sum runs.
    cases.add_degenerate(crossed, base, suffix="_rotated")
    # Relative yaw on both sides of the switch to the clipping path, near 0 and near pi/2.
    for name, angle in (
        ("just_below_switch", 0.999 * PARALLEL_SINE),
        ("just_above_switch", 1.001 * PARALLEL_SINE),
    ):
        near = base.clone()
        near[:, :2] += torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.5
        sign = torch.where(torch.rand(n, 1, generator=g) < 0.5, -1.0, 1.0).double()
        quarter = torch.randint(0, 4, (n, 1), generator=g).double() * math.pi / 2
        near[:, 4:5] += quarter + sign * angle
        cases.add(name, base, near)
    return cases.pairs()


def test_edge_sum_matches_shapely_at_generic_angles() -> None:
    g = torch.Generator().manual_seed(10)
    a, b, blocks = _rotated_edge_cases(g)
    ref = shapely_area(a.numpy(), b.numpy())
    ours = bev_intersection_area(a, b).numpy()
    rel = a[:, 4] - b[:, 4]
    cos_r, sin_r = torch.cos(rel), torch.sin(rel)
    for name, rows in blocks.items():
        err = np.abs(ours[rows] - ref[rows]).max()
        assert err < 1e-9, f"{name}: area error {err}"
        general = (sin_r[rows].abs() >= PARALLEL_SINE) & (cos_r[rows].abs() >= PARALLEL_SINE)
        if name != "just_below_switch":
            assert bool(general.all()), name  # these pairs really take the edge-sum path
        # Both formulas agree wherever the edge sum is allowed.
        sa, sb = a[rows][general], b[rows][general]
        edge_sum = edge_sum_area(sa, sb, cos_r[rows][general], sin_r[rows][general])
        assert torch.allclose(edge_sum, clip_area(sa, sb), rtol=0, atol=1e-9), name
    # The cases are what they claim.
    area_a = (a[:, 2] * a[:, 3]).numpy()
    area_b = (b[:, 2] * b[:, 3]).numpy()
    assert np.allclose(ours[blocks["nested_rotated"]], area_b[blocks["nested_rotated"]], rtol=1e-12)
    assert np.allclose(ours[blocks["corners_on_edges"]], area_b[blocks["corners_on_edges"]], rtol=1e-12)
    assert np.allclose(ours[blocks["corner_touching_edge"]], 0, atol=1e-12)
    assert np.allclose(ours[blocks["corner_on_corner"]], 0, atol=1e-12)
    assert np.allclose(ours[blocks["zero_width_rotated"]], 0) and np.allclose(
        ours[blocks["zero_size_rotated"]], 0
    )
    assert (ours[blocks["same_centre_crossed"]] > 0.1 * area_a[blocks["same_centre_crossed"]]).all()


def test_float32_boxes_stay_within_1e_5_of_shapely() -> None:
    g = torch.Generator().manual_seed(11)
    a, b, _ = _rotated_edge_cases(g)
    a32, b32 = a.float(), b.float()
    ref = shapely_iou_bev(a32.double().numpy(), b32.double().numpy())
    assert np.abs(box_iou_bev(a32, b32, aligned=True).double().numpy() - ref).max() < 1e-5


@pytest.mark.parametrize("three_d", [False, True])
def test_dense_pairwise_path_equals_candidate_path_and_shapely(
    monkeypatch: pytest.MonkeyPatch, three_d: bool
) -> None:
    """A pile where every pair overlaps takes the all-pairs path; it must give the numbers of
    the candidate-pair path (forced here) and of shapely."""
    g = torch.Generator().manual_seed(12)
    pile, _ = clustered_boxes(260, 1, g)
    pile[:, :2] = pile[:1, :2] + 0.4 * torch.randn(260, 2, generator=g)
    pile[:, 6] = torch.rand(260, generator=g) * 2 * math.pi
    pile[::7, 6] = pile[0, 6]  # some exactly parallel pairs (clipping path) in the mix
    pile[:, 2] = torch.rand(260, generator=g)
    a, b = pile[:140].double(), pile[140:].double()
    fn = box_iou_3d if three_d else box_iou_bev
    calls = []
    real_pairs = iou_rotated._candidate_pairs
    monkeypatch.setattr(iou_rotated, "_candidate_pairs", lambda *args: calls.append(1) or real_pairs(*args))
    dense = fn(a, b)
    assert not calls  # dense path taken: no candidate list
    monkeypatch.setattr(iou_rotated, "_DENSE_SHARE", math.inf)
    sparse = fn(a, b)
    assert calls  # candidate path taken
    assert dense.shape == (140, 120) and (dense > 0).float().mean() > 0.5
    assert torch.allclose(dense, sparse, rtol=0, atol=1e-12)
    i, j = torch.meshgrid(torch.arange(140), torch.arange(120), indexing="ij")
    i, j = i.reshape(-1), j.reshape(-1)
    if three_d:
        ref = shapely_iou_3d(a[i].numpy(), b[j].numpy())
    else:
        ref = shapely_iou_bev(a[i][:, [0, 1, 3, 4, 6]].numpy(), b[j][:, [0, 1, 3, 4, 6]].numpy())
    assert np.abs(dense.numpy().reshape(-1) - ref).max() < 1e-7
