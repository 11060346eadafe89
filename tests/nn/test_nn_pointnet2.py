"""PointNet++ blocks: sampling, ball query and interpolation against values worked out by hand and
a reference loop; the network's shapes, gradients and batching."""

from __future__ import annotations

import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.pointnet2 import (
    FeaturePropagation,
    PointNet2,
    SetAbstraction,
    ball_query,
    farthest_point_sample,
    group_points,
    three_interpolate,
    three_nn,
)


def reference_fps(xyz: torch.Tensor, npoint: int) -> list[int]:
    """Farthest point sampling of one cloud, one point at a time (the textbook loop)."""
    chosen = [0]
    for _ in range(npoint - 1):
        distance = torch.stack([((xyz - xyz[c]) ** 2).sum(1) for c in chosen]).amin(0)
        chosen.append(int(distance.argmax()))
    return chosen


def test_fps_by_hand_and_against_the_reference() -> None:
    line = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]]])
    assert farthest_point_sample(line, 3).tolist() == [[0, 3, 2]]
    clouds = torch.rand(3, 200, 3, generator=torch.Generator().manual_seed(0))
    got = farthest_point_sample(clouds, 32)
    for b in range(3):
        assert got[b].tolist() == reference_fps(clouds[b], 32)
    # More samples than points: every point once, then repeats.
    assert sorted(set(farthest_point_sample(line, 6)[0].tolist())) == [0, 1, 2, 3]


def test_ball_query_takes_the_first_points_inside_and_pads_with_the_first() -> None:
    xyz = torch.tensor([[[0.0, 0, 0], [5, 0, 0], [0.5, 0, 0], [0.9, 0, 0], [0.2, 0, 0]]])
    centres = torch.tensor([[[0.0, 0, 0], [5.0, 0, 0], [20.0, 0, 0]]])
    index = ball_query(1.0, 4, xyz, centres)
    assert index.tolist() == [[[0, 2, 3, 4], [1, 1, 1, 1], [0, 0, 0, 0]]]
    assert ball_query(0.6, 2, xyz, centres)[0, 0].tolist() == [0, 2]  # only the first nsample
    assert ball_query(1.0, 8, xyz, centres).shape == (1, 3, 8)  # more slots than points


def test_grouping_and_three_nn_interpolation_by_hand() -> None:
    features = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]])
    assert group_points(features, torch.tensor([[[2, 0], [1, 1]]])).tolist() == [
        [[[3.0, 30.0], [1.0, 10.0]], [[2.0, 20.0], [2.0, 20.0]]]
    ]
    known = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [10, 0, 0]]])
    unknown = torch.tensor([[[0.4, 0, 0]]])
    dist, index = three_nn(unknown, known)
    assert index.tolist() == [[[0, 1, 2]]]
    torch.testing.assert_close(dist, torch.tensor([[[0.4, 0.6, 2.6]]]))
    values = torch.tensor([[[2.0], [4.0], [12.0], [100.0]]])
    # Weights 1/0.4, 1/0.6, 1/2.6 on the values 2, 4, 12 (the far point does not count).
    weights = torch.tensor([1 / 0.4, 1 / 0.6, 1 / 2.6])
    expected = (weights * torch.tensor([2.0, 4.0, 12.0])).sum() / weights.sum()
    torch.testing.assert_close(three_interpolate(values, index, dist), expected.reshape(1, 1, 1))
    # Fewer than three known points: the nearest ones repeat.
    _, index = three_nn(unknown, known[:, :2])
    assert index.tolist() == [[[0, 1, 1]]]


def test_set_abstraction_and_propagation_shapes() -> None:
    xyz, features = torch.rand(2, 64, 3), torch.rand(2, 64, 5)
    sa = SetAbstraction(16, 0.4, 8, 5, [16, 32])
    centres, pooled = sa(xyz, features)
    assert centres.shape == (2, 16, 3) and pooled.shape == (2, 16, 32)
    assert torch.equal(centres[0, 0], xyz[0, 0])  # FPS starts at point 0
    fp = FeaturePropagation(32 + 5, [24])
    assert fp(xyz, centres, features, pooled).shape == (2, 64, 24)


def tiny_pointnet2() -> PointNet2:
    return PointNet2(
        in_channels=6,
        npoints=(32, 8),
        radii=(0.3, 0.6),
        nsamples=(8, 8),
        sa_channels=((16, 16), (32, 32)),
        fp_channels=((32,), (16, 16)),
    )


def test_pointnet2_shapes_gradients_and_batching() -> None:
    torch.manual_seed(0)
    net = tiny_pointnet2()
    assert net.out_channels == 16
    a, b, c = torch.rand(100, 6), torch.rand(100, 6), torch.rand(40, 6)
    out = net([a, b])  # one batch of equal-size clouds
    assert out.shape == (200, 16)
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with torch.no_grad():
        # LayerNorm: a cloud's features do not depend on its batch, whether batched or looped.
        torch.testing.assert_close(net([a, b])[100:], net([b]), atol=1e-5, rtol=1e-5)
        mixed = net([a, c])
        assert mixed.shape == (140, 16)
        torch.testing.assert_close(mixed[100:], net([c]), atol=1e-5, rtol=1e-5)


def test_pointnet2_errors() -> None:
    net = tiny_pointnet2()
    with pytest.raises(ShapeError, match=r"points\[0\]: expected Tensor\[N, 6\]"):
        net([torch.rand(5, 4)])
    with pytest.raises(ShapeError, match="at least one point"):
        net([torch.rand(5, 6), torch.rand(0, 6)])
    with pytest.raises(FormatError, match="one entry per layer"):
        PointNet2(npoints=(8,), radii=(0.1, 0.2))
    with pytest.raises(FormatError, match="at least 3"):
        PointNet2(in_channels=2)
