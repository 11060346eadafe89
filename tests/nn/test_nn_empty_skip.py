"""Conv stages that skip a BEV map's empty tiles (`pc3d.nn.empty_skip`): the dense stages' outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pc3d.nn.empty_skip as empty_skip
from pc3d.nn import SECONDBackbone
from pc3d.nn.fuse import optimize_for_inference
from pc3d.nn.winograd import WinogradConv2d


def folded_stage(channels: list[int], strides: list[int], bias: float, seed: int = 0) -> nn.Sequential:
    """`(Conv2d, Identity, ReLU)` per layer, as a backbone stage looks once its norms are folded."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for c_in, c_out, stride in zip(channels[:-1], channels[1:], strides, strict=True):
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        conv.weight.data.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.3)
        conv.bias.data.copy_(torch.rand(c_out, generator=gen) + bias)  # type: ignore[union-attr]
        layers += [conv, nn.Identity(), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def sparse_map(batch: int, channels: int, height: int, width: int, cells: int, seed: int = 0) -> torch.Tensor:
    """A channels-last map that is zero but for `cells` random cells per sample (a pillar canvas)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, channels, height, width)
    for b in range(batch):
        flat = torch.randperm(height * width, generator=gen)[:cells]
        x[b, :, flat // width, flat % width] = torch.rand(channels, cells, generator=gen) + 0.1
    return x.contiguous(memory_format=torch.channels_last)


@pytest.fixture
def tiled_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many active tiles each tiled layer computed (dense layers add nothing)."""
    calls: list[int] = []
    tiled = empty_skip._tiled

    def spy(x, active, *args):  # type: ignore[no-untyped-def]
        calls.append(int(active.sum()))
        return tiled(x, active, *args)

    monkeypatch.setattr(empty_skip, "_tiled", spy)
    return calls


def test_conv_relu_layers_accepts_only_folded_3x3_stages() -> None:
    stage = folded_stage([4, 6, 6], [2, 1], bias=0.0)
    assert empty_skip.conv_relu_layers(stage) == [stage[0], stage[3]]
    with_norm = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    wide = nn.Sequential(nn.Conv2d(4, 4, 5, padding=2), nn.Identity(), nn.ReLU())
    dilated = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, dilation=2), nn.Identity(), nn.ReLU())
    strided = nn.Sequential(nn.Conv2d(4, 4, 3, stride=3, padding=1), nn.Identity(), nn.ReLU())
    for stage in (with_norm, wide, dilated, strided, nn.Sequential()):
        assert empty_skip.conv_relu_layers(stage) is None


@pytest.mark.parametrize(
    "size, bias",
    [
        ((160, 128), 0.0),  # tiles of 4 divide every layer's map
        ((158, 126), 0.0),  # 79 x 63 after the stride: tiles are cropped at the border
        ((160, 128), 0.5),  # a non-zero background: the zero padding changes the border cells
    ],
)
def test_stages_equal_the_dense_stages_on_a_sparse_map(
    size: tuple[int, int], bias: float, tiled_calls: list[int]
) -> None:
    stages = [folded_stage([5, 8, 8, 8], [2, 1, 1], bias), folded_stage([8, 12, 12], [2, 1], bias, seed=1)]
    x = sparse_map(2, 5, *size, cells=6)
    with torch.no_grad():
        expected = []
        y = x
        for stage in stages:
            y = stage(y)
            expected.append(y)
        got = empty_skip.run_stages(x, [empty_skip.conv_relu_layers(s) for s in stages])  # type: ignore[misc]
    assert len(got) == 2
    for out, ref in zip(got, expected, strict=True):
        assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert len(tiled_calls) >= 3 and min(tiled_calls) > 0  # most layers skipped empty tiles


def test_winograd_convs_compute_their_tiles_as_single_blocks(
    tiled_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = folded_stage([6, 8, 8, 8], [2, 1, 1], bias=0.3)
    for index in (3, 6):  # the stride-1 convs
        stage[index] = WinogradConv2d.from_conv(stage[index])  # type: ignore[arg-type]
    blocks: list[int] = []
    real = empty_skip.winograd_blocks

    def spy(windows, *args):  # type: ignore[no-untyped-def]
        blocks.append(windows.shape[0])
        return real(windows, *args)

    monkeypatch.setattr(empty_skip, "winograd_blocks", spy)
    x = sparse_map(2, 6, 160, 128, cells=6)
    convs = empty_skip.conv_relu_layers(stage)
    assert convs is not None
    with torch.no_grad():
        (got,) = empty_skip.run_stages(x, [convs])
        torch.testing.assert_close(got, stage(x), atol=1e-4, rtol=1e-4)
    assert len(blocks) == 2 and blocks == tiled_calls[1:]  # every active tile of both layers
    # A Winograd conv first, on an empty map: no tile at all.
    first = folded_stage([6, 8, 8], [1, 1], bias=0.3)
    first[0] = WinogradConv2d.from_conv(first[0])  # type: ignore[arg-type]
    empty = torch.zeros(1, 6, 64, 48).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        (got,) = empty_skip.run_stages(empty, [empty_skip.conv_relu_layers(first)])  # type: ignore[list-item]
        torch.testing.assert_close(got, first(empty), atol=1e-5, rtol=1e-5)
    assert blocks[2] == 0


def test_an_empty_map_computes_no_tile_and_a_full_map_runs_dense(tiled_calls: list[int]) -> None:
    stage = folded_stage([3, 4, 4], [1, 1], bias=0.2)
    convs = empty_skip.conv_relu_layers(stage)
    assert convs is not None
    empty = torch.zeros(1, 3, 64, 48).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        (out,) = empty_skip.run_stages(empty, [convs])
        torch.testing.assert_close(out, stage(empty))
        assert tiled_calls[0] == 0  # the first layer: the padding equals the zero background
        assert tiled_calls[1] > 0  # then the border differs from the background
        tiled_calls.clear()
        full = torch.rand(1, 3, 16, 12) + 0.1
        (out,) = empty_skip.run_stages(full, [convs])
        torch.testing.assert_close(out, stage(full), atol=1e-5, rtol=1e-5)
    assert tiled_calls == []


def test_backbone_skips_empty_tiles_only_once_optimised_and_at_inference(tiled_calls: list[int]) -> None:
    torch.manual_seed(0)
    backbone = SECONDBackbone(5, (8, 16), (2, 2), (2, 2)).eval()
    assert backbone.skip_empty is False
    fast = optimize_for_inference(backbone)
    assert isinstance(fast, SECONDBackbone) and fast.skip_empty is True
    x = sparse_map(1, 5, 64, 48, cells=5)
    with torch.no_grad():
        expected = backbone(x)
        assert tiled_calls == []  # norms not folded: the plain stages
        got = fast(x)
    assert tiled_calls
    for out, ref in zip(got, expected, strict=True):
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    tiled_calls.clear()
    fast(x.clone().requires_grad_())  # autograd records the call: the plain stages
    assert tiled_calls == []
    fast(x)  # gradient mode, but nothing to record (the inference copy has no trainable weight)
    assert tiled_calls
