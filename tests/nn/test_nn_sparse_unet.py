"""Sparse U-Net: inverse convs against dense transposed convs, voxelization by hand, the network's
shapes, gradients, batch independence and input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pc3d.errors import FormatError, ShapeError
from pc3d.nn.sparse import (
    run_sparse_conv,
    run_sparse_inverse_conv,
    sparse_conv,
    sparse_conv_tensor,
    sparse_inverse_conv,
    sparse_to_dense,
)
from pc3d.nn.sparse_unet import SparseUNet, voxelize_points

spconv = pytest.importorskip("spconv.pytorch", reason="spconv 2 is not installed (pip install spconv)")


def random_sites(shape: tuple[int, int, int], count: int, seed: int = 0) -> torch.Tensor:
    """`IntTensor[count, 4]` unique (0, z, y, x) sites."""
    generator = torch.Generator().manual_seed(seed)
    flat = torch.randperm(shape[0] * shape[1] * shape[2], generator=generator)[:count]
    z, y, x = flat // (shape[1] * shape[2]), (flat // shape[2]) % shape[1], flat % shape[2]
    return torch.stack([torch.zeros_like(z), z, y, x], dim=1).int()


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 2, 1)])
def test_inverse_conv_is_the_dense_transposed_conv_at_the_fine_sites(
    kernel: int, stride: int, padding: int
) -> None:
    torch.manual_seed(0)
    shape = (6, 20, 18)
    coords = random_sites(shape, 500)
    fine = sparse_conv_tensor(torch.randn(len(coords), 5), coords, shape, 1)
    down = sparse_conv("SparseConv3d", 5, 8, kernel, stride, padding, "down1")
    coarse = run_sparse_conv(down, fine)
    # The coarse tensor's rows in another order: the inverse conv must find its sites by coordinate.
    order = torch.randperm(coarse.indices.shape[0])
    coarse = sparse_conv_tensor(
        torch.randn(len(order), 8, requires_grad=True), coarse.indices[order], coarse.spatial_shape, 1
    )
    up = sparse_inverse_conv(8, 3, kernel, "down1", bias=True)
    torch.nn.init.normal_(up.weight)
    out = run_sparse_inverse_conv(up, coarse, fine, down)
    assert torch.equal(out.indices, fine.indices) and list(out.spatial_shape) == list(shape)
    weight = up.weight.permute(
        4, 0, 1, 2, 3
    )  # (C_out, k, k, k, C_in) -> conv_transpose3d's (C_in, C_out, k, k, k)
    coarse_dense = sparse_to_dense(coarse)
    size = [(c - 1) * stride - 2 * padding + kernel for c in coarse.spatial_shape]
    dense = F.conv_transpose3d(
        coarse_dense,
        weight,
        up.bias,
        stride=stride,
        padding=padding,
        output_padding=[s - n for s, n in zip(shape, size, strict=True)],
    )
    z, y, x = fine.indices[:, 1:].long().unbind(1)
    expected = dense[0, :, z, y, x].t()
    torch.testing.assert_close(out.features, expected, atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # inference: no autograd graph, same sums
        inferred = run_sparse_inverse_conv(up, coarse, fine, down)
    torch.testing.assert_close(inferred.features, expected, atol=1e-4, rtol=1e-5)
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad((out.features * upstream).sum(), [coarse.features, up.weight])
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [coarse.features, up.weight])
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)


def test_inverse_conv_errors() -> None:
    shape = (4, 8, 8)
    fine = sparse_conv_tensor(torch.randn(30, 2), random_sites(shape, 30), shape, 1)
    down = sparse_conv("SparseConv3d", 2, 2, 2, 2, 0, "down1")
    coarse = run_sparse_conv(down, fine)
    with pytest.raises(FormatError, match=r"kernel \(3, 3, 3\) differs from its strided conv's \(2, 2, 2\)"):
        run_sparse_inverse_conv(sparse_inverse_conv(2, 2, 3, "down1"), coarse, fine, down)
    missing = sparse_conv_tensor(coarse.features[1:], coarse.indices[1:], coarse.spatial_shape, 1)
    with pytest.raises(ShapeError, match="does not hold the output sites of its strided conv"):
        run_sparse_inverse_conv(sparse_inverse_conv(2, 2, 2, "down1"), missing, fine, down)
    with pytest.raises(FormatError, match="conv_type"):
        sparse_conv("Conv3d", 2, 2, 3)


def test_voxelize_points_by_hand() -> None:
    first = torch.tensor([[0.05, 0.05, 0.05, 1.0], [0.15, 0.05, 0.05, 3.0], [1.05, 0.0, 0.0, 5.0]])
    second = torch.tensor([[-4.0, -4.0, -4.0, 7.0]])
    voxels = voxelize_points([first, second], (0.2, 0.2, 0.2), multiple=4)
    # Each cloud's grid starts at its own lowest cell: cloud 0 spans x cells 0..5, cloud 1 one cell.
    assert voxels.spatial_shape == (4, 4, 8)
    assert voxels.coords.tolist() == [[0, 0, 0, 0], [0, 0, 0, 5], [1, 0, 0, 0]]
    assert voxels.point_to_voxel.tolist() == [0, 0, 1, 2]
    # Mean of the two first points: x, y, z, intensity, then offsets from the voxel centre (0.1, 0.1, 0.1).
    torch.testing.assert_close(voxels.features[0], torch.tensor([0.1, 0.05, 0.05, 2.0, 0.0, -0.05, -0.05]))
    torch.testing.assert_close(voxels.point_features[2, 4:], torch.tensor([-0.05, -0.1, -0.1]))


def small_unet(**kwargs: object) -> SparseUNet:
    settings: dict[str, object] = {
        "in_channels": 4,
        "voxel_size": (0.5, 0.5, 0.5),
        "base_channels": 8,
        "encoder_channels": (8, 16),
        "decoder_channels": (16, 8),
        "point_channels": 4,
    }
    settings.update(kwargs)
    return SparseUNet(**settings)  # type: ignore[arg-type]


def clouds(seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.rand(300, 4, generator=generator) * torch.tensor([20.0, 20.0, 3.0, 1.0]),
        torch.rand(120, 4, generator=generator) * torch.tensor([10.0, 5.0, 2.0, 1.0]) - 30.0,
    ]


def test_unet_shapes_gradients_and_batch_independence() -> None:
    torch.manual_seed(0)
    net = small_unet()
    assert net.out_channels == 12
    points = clouds()
    out = net(points)
    assert out.shape == (420, 12)
    out.square().mean().backward()
    no_grad = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
    # Encoder, decoder (inverse convs named by their strided twins) and the point branch exist.
    assert tuple(net.up[0].up.weight.shape) == (16, 2, 2, 2, 16) and net.up[0].up.indice_key == "down2"
    net.eval()
    with torch.no_grad():
        together = net(points)
        alone = net([points[1]])
    torch.testing.assert_close(together[300:], alone, atol=1e-5, rtol=1e-5)


def test_unet_without_point_branch_and_errors() -> None:
    net = small_unet(point_channels=0, blocks=2)
    assert net.out_channels == 8 and net(clouds()).shape == (420, 8)
    with pytest.raises(ShapeError, match=r"points\[1\]: expected Tensor\[N, 4\], got \(5, 3\)"):
        net([torch.zeros(2, 4), torch.zeros(5, 3)])
    bad = torch.zeros(3, 4)
    bad[2, 0] = float("nan")
    with pytest.raises(FormatError, match=r"points\[0\] holds NaN"):
        net([bad])
    with pytest.raises(ShapeError, match="empty batch"):
        net([])
    with pytest.raises(FormatError, match="one entry per encoder stage"):
        small_unet(decoder_channels=(8,))
    with pytest.raises(FormatError, match="voxel_size"):
        small_unet(voxel_size=(0.5, 0.5))


def test_the_first_sparse_convolution_prints_nothing() -> None:
    """torch notes spconv's use of is_fx_tracing in glog format (``W1204 ... _symbolic_trace.py``)
    on the first sparse convolution; pc3d's commands print warnings as one ``pc3d X: warning:`` line."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from pc3d.nn.sparse_unet import SparseUNet\n"
        "net = SparseUNet(in_channels=4, voxel_size=[0.5, 0.5, 0.5], base_channels=8,"
        " encoder_channels=[8, 16], decoder_channels=[16, 8], blocks=1, point_channels=8).eval()\n"
        "with torch.no_grad(): net([torch.rand(200, 4) * 10])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "is_fx_tracing" not in done.stderr and done.stderr == ""
