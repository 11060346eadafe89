"""Winograd F(4x4, 3x3) convs (`pc3d.nn.winograd`): the direct conv's outputs, used only where they apply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pc3d.nn.winograd as winograd


@pytest.mark.parametrize("shape", [(2, 6, 12, 8), (1, 5, 7, 9), (1, 3, 1, 1), (1, 4, 13, 6)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_winograd_conv_equals_the_direct_conv(shape: tuple[int, int, int, int], with_bias: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, shape[1], 3, 3, generator=gen)
    bias = torch.randn(4, generator=gen) if with_bias else None
    got = winograd.winograd_conv3x3(x, winograd.transform_weight(weight), bias)
    assert got.shape == (shape[0], 4, shape[2], shape[3])
    assert got.is_contiguous(memory_format=torch.channels_last)
    expected = F.conv2d(x, weight, bias, padding=1)
    # The transforms' coefficients (up to 8 and 1/24) cost a few ulps of the outputs' magnitude.
    torch.testing.assert_close(got, expected, atol=2e-5 * float(expected.abs().max()), rtol=1e-5)


def test_transformed_weight_is_g_w_g_transposed() -> None:
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 1, 1] = 1.0  # the identity filter
    u = winograd.transform_weight(weight).view(6, 6)
    g = torch.tensor(winograd._G)
    torch.testing.assert_close(u, g[:, 1:2] @ g[:, 1:2].T)
    assert u[0].abs().sum() == 0 and u[5].abs().sum() == 0
    torch.testing.assert_close(u[1, 1], torch.tensor(1 / 36))


def test_winograd_module_is_the_conv_at_inference_and_rebuilds_after_a_weight_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1).eval()
    fast = winograd.WinogradConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias and not fast.training
    assert list(fast.state_dict()) == list(conv.state_dict())
    calls: list[int] = []
    direct = winograd.winograd_conv3x3

    def spy(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return direct(*args)

    monkeypatch.setattr(winograd, "winograd_conv3x3", spy)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), conv(x), atol=1e-4, rtol=1e-4)
        assert calls == [1]
        conv.weight.mul_(2.0)  # the kept transform is stale now
        torch.testing.assert_close(fast(x), conv(x), atol=1e-4, rtol=1e-4)
    fast(x)  # the weight requires a gradient: the plain conv
    fast.requires_grad_(False)
    fast(x)  # gradient mode, but nothing to record
    assert calls == [1, 1, 1]
    fast.train()
    with torch.no_grad():
        fast(x)
    assert calls == [1, 1, 1]


def test_use_winograd_replaces_only_wide_3x3_stride_1_convs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 8)
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1),  # replaced
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False)),  # replaced, nested
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 4, 3, padding=1),  # too narrow
        nn.Conv2d(8, 8, 1),
        nn.Conv2d(8, 8, 3, padding=1, dilation=2),
    ).eval()
    keys = list(model.state_dict())
    x = torch.randn(1, 8, 12, 10)
    with torch.no_grad():
        expected = model[:2](x)
        winograd.use_winograd(model)
        got = model[:2](x)
    kinds = [type(m).__name__ for m in (model[0], model[1][0], *model[2:])]
    assert kinds == ["WinogradConv2d", "WinogradConv2d"] + ["Conv2d"] * 4
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
