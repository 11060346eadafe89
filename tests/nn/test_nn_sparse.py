"""SECOND's sparse encoder on spconv 2: missing dependency, algorithm choice, exactness, shapes, gradients."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d.nn import sparse
from pc3d.nn.sparse import (
    SparseEncoder,
    conv_output_shape,
    run_sparse_conv,
    set_sparse_conv_algo,
    sparse_conv_algo,
    sparse_conv_block,
    sparse_to_dense,
)


def test_missing_spconv_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spconv", None)
    monkeypatch.setitem(sys.modules, "spconv.pytorch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install spconv .*spconv-cu120"):
        SparseEncoder()
    with pytest.raises(MissingDependencyError, match="spconv"):
        sparse.import_spconv()


def test_kitti_shape_trace_without_running() -> None:
    assert conv_output_shape((41, 1600, 1408), 3, 2, 1) == (21, 800, 704)
    assert conv_output_shape((11, 400, 352), 3, 2, (0, 1, 1)) == (5, 200, 176)
    assert conv_output_shape((5, 200, 176), (3, 1, 1), (2, 1, 1), 0) == (2, 200, 176)


spconv = pytest.importorskip("spconv.pytorch", reason="spconv 2 is not installed (pip install spconv)")


def random_sites(shape: tuple[int, int, int], count: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """`IntTensor[count, 4]` unique (batch, z, y, x) sites."""
    generator = torch.Generator().manual_seed(seed)
    cells = shape[0] * shape[1] * shape[2]
    flat = torch.randperm(batch * cells, generator=generator)[:count]
    b, rest = flat // cells, flat % cells
    z, y, x = rest // (shape[1] * shape[2]), (rest // shape[2]) % shape[1], rest % shape[2]
    return torch.stack([b, z, y, x], dim=1).int()


def dense_input(
    features: torch.Tensor, coords: torch.Tensor, shape: tuple[int, int, int], batch: int = 1
) -> torch.Tensor:
    dense = features.new_zeros(batch, features.shape[1], *shape)
    c = coords.long()
    return (
        dense.permute(0, 2, 3, 4, 1)
        .index_put((c[:, 0], c[:, 1], c[:, 2], c[:, 3]), features)
        .permute(0, 4, 1, 2, 3)
    )


def test_algorithm_native_on_cpu_and_spconv_default_restored_elsewhere() -> None:
    assert sparse_conv_algo("cpu", spconv.ConvAlgo.MaskImplicitGemm) == spconv.ConvAlgo.Native
    assert sparse_conv_algo("cuda", spconv.ConvAlgo.MaskImplicitGemm) == spconv.ConvAlgo.MaskImplicitGemm
    block = sparse_conv_block("SubMConv3d", 4, 8, 3, 1, 1, "k")
    block[0].algo = spconv.ConvAlgo.MaskImplicitGemm  # what a CUDA build of spconv picks
    set_sparse_conv_algo(block, "cpu")
    assert block[0].algo == spconv.ConvAlgo.Native
    set_sparse_conv_algo(block, "cuda")
    assert block[0].algo == spconv.ConvAlgo.MaskImplicitGemm


@pytest.mark.parametrize(
    ("conv_type", "stride", "padding"),
    [("SubMConv3d", 1, 1), ("SparseConv3d", 2, 1), ("SparseConv3d", 2, (0, 1, 1))],
)
def test_sparse_conv_equals_dense_conv(conv_type: str, stride: int, padding: object) -> None:
    # Thousands of sites: spconv's own CPU scatter-add goes wrong there on several threads (see sparse_conv_cpu).
    shape = (8, 64, 64)
    coords = random_sites(shape, 6000)
    features = torch.randn(coords.shape[0], 16, requires_grad=True)
    block = sparse_conv_block(conv_type, 16, 16, 3, stride, padding, "key")
    conv = block[0]
    torch.nn.init.normal_(conv.weight)
    out = run_sparse_conv(conv, spconv.SparseConvTensor(features, coords, list(shape), 1))
    got = sparse_to_dense(out)
    x = dense_input(features, coords, shape)
    weight = conv.weight.permute(
        0, 4, 1, 2, 3
    )  # spconv (C_out, kD, kH, kW, C_in) -> torch (C_out, C_in, kD, kH, kW)
    expected = F.conv3d(x, weight, stride=stride, padding=padding)
    occupied = (x.detach().abs().sum(1, keepdim=True) > 0).float()
    active = (
        occupied
        if conv_type == "SubMConv3d"
        else F.conv3d(occupied, torch.ones(1, 1, 3, 3, 3), stride=stride, padding=padding) > 0
    )
    expected = expected * active
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # inference: no autograd graph, same sums
        inferred = run_sparse_conv(conv, spconv.SparseConvTensor(features, coords, list(shape), 1))
    assert torch.equal(inferred.indices, out.indices)
    torch.testing.assert_close(sparse_to_dense(inferred), expected, atol=1e-4, rtol=1e-5)
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad((got * upstream).sum(), [features, conv.weight])
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [features, conv.weight])
    torch.testing.assert_close(grads[0], expected_grads[0], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(grads[1], expected_grads[1], atol=1e-2, rtol=1e-4)


def test_encoder_layout_matches_mmdetection3d() -> None:
    encoder = SparseEncoder()
    shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    assert shapes["conv_input.0.weight"] == (16, 3, 3, 3, 4)  # spconv 2: (C_out, kD, kH, kW, C_in)
    assert shapes["encoder_layers.encoder_layer2.0.0.weight"] == (32, 3, 3, 3, 16)
    assert shapes["encoder_layers.encoder_layer4.2.1.running_mean"] == (64,)
    assert shapes["conv_out.0.weight"] == (128, 3, 1, 1, 64)
    assert sum(k.endswith("0.weight") and len(v) == 5 for k, v in shapes.items()) == 12
    assert encoder.output_shape == (2, 200, 176) and encoder.out_channels == 256
    assert encoder.conv_out[1].eps == 1e-3 and encoder.conv_out[1].momentum == 0.01


def test_tiny_encoder_output_shape_and_gradients() -> None:
    shape = (41, 32, 24)
    encoder = SparseEncoder(in_channels=4, sparse_shape=shape).train()
    assert encoder.output_shape == (2, 4, 3) and encoder.out_channels == 256
    coords = random_sites(shape, 600, batch=2)
    features = torch.randn(coords.shape[0], 4)
    out = encoder(features, coords, batch_size=2)
    assert out.shape == (2, 256, 4, 3)
    out.square().mean().backward()
    weight = encoder.encoder_layers.encoder_layer2[0][0].weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(features, coords, 2), encoder(features, coords, 2), atol=0, rtol=0)


def test_encoder_without_any_voxel_gives_a_zero_map() -> None:
    shape = (41, 32, 24)
    encoder = SparseEncoder(in_channels=4, sparse_shape=shape).eval()
    coords = random_sites(shape, 300, batch=1)
    features = torch.randn(coords.shape[0], 4)
    empty = encoder(features[:0], coords[:0], batch_size=2)
    assert empty.shape == (2, 256, 4, 3) and not empty.any()
    with torch.no_grad():
        one = encoder(features, coords, batch_size=2)  # the second sample has no voxel: zeros too
    assert one[0].abs().sum() > 0 and not one[1].any()


def test_sparse_to_dense_places_features() -> None:
    coords = torch.tensor([[0, 1, 2, 3], [1, 0, 0, 0]], dtype=torch.int32)
    x = spconv.SparseConvTensor(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), coords, [2, 3, 4], 2)
    dense = sparse_to_dense(x)
    assert dense.shape == (2, 2, 2, 3, 4)
    assert dense[0, :, 1, 2, 3].tolist() == [1.0, 2.0] and dense[1, :, 0, 0, 0].tolist() == [3.0, 4.0]
    assert dense.abs().sum() == 10


def test_encoder_rejects_bad_input() -> None:
    encoder = SparseEncoder(sparse_shape=(41, 32, 24))
    with pytest.raises(ShapeError, match=r"row 0 \[0, 41, 0, 0\]"):
        encoder(torch.ones(1, 4), torch.tensor([[0, 41, 0, 0]], dtype=torch.int32), 1)
    with pytest.raises(ShapeError, match=r"\(V, 4\)"):
        encoder(torch.ones(1, 3), torch.tensor([[0, 0, 0, 0]], dtype=torch.int32), 1)
    with pytest.raises(FormatError, match="encoder_paddings"):
        SparseEncoder(encoder_channels=((16,), (32,)), encoder_paddings=((1,),))
    with pytest.raises(FormatError, match="conv_type"):
        sparse_conv_block("SparseConv2d", 4, 4, 3, 1, 1, "k")


@pytest.mark.parametrize(
    ("kernel", "dilation"), [((3, 3, 3), (1, 1, 1)), ((3, 1, 3), (1, 1, 2)), ((2, 2, 2), (1, 1, 1))]
)
def test_submanifold_table_matches_a_lookup_by_hand(
    kernel: tuple[int, int, int], dilation: tuple[int, int, int]
) -> None:
    shape = (5, 9, 7)
    coords = random_sites(shape, 300, batch=2)  # a site of one sample is never a neighbour in the other
    table = sparse.submanifold_table(coords.long(), shape, kernel, dilation)
    rows = {tuple(site): row for row, site in enumerate(coords.tolist())}
    offsets = [
        (a * dilation[0], b * dilation[1], c * dilation[2])
        for a in range(kernel[0])
        for b in range(kernel[1])
        for c in range(kernel[2])
    ]
    centre = [(k // 2) * d for k, d in zip(kernel, dilation, strict=True)]
    expected = [
        [
            rows.get((b, z + dz - centre[0], y + dy - centre[1], x + dx - centre[2]), len(coords))
            for dz, dy, dx in offsets
        ]
        for b, z, y, x in coords.tolist()
    ]
    assert table.tolist() == expected
