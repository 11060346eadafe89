"""RoI Align and RoI Pool against straightforward loop references (the reference kernels' logic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor

import pc3d.nn.roi.bags as roi_module
from pc3d.errors import FormatError, ShapeError
from pc3d.nn import RoIAlign, RoIPool, roi_align, roi_pool


def _bilinear(feat: np.ndarray, y: float, x: float) -> np.ndarray:
    channels, height, width = feat.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(channels)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * feat[:, y_low, x_low]
        + hy * lx * feat[:, y_low, x_high]
        + ly * hx * feat[:, y_high, x_low]
        + ly * lx * feat[:, y_high, x_high]
    )


def roi_align_loop(
    x: Tensor, rois: Tensor, ph: int, pw: int, scale: float, sampling_ratio: int, aligned: bool
) -> np.ndarray:
    """One RoI, one bin, one sample at a time, in float64."""
    feats = x.double().numpy()
    out = np.zeros((rois.shape[0], x.shape[1], ph, pw))
    offset = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        sx, sy = x1 * scale - offset, y1 * scale - offset
        rw, rh = x2 * scale - offset - sx, y2 * scale - offset - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / pw, rh / ph
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / ph)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / pw)
        count = max(gh * gw, 1)
        for i in range(ph):
            for j in range(pw):
                acc = np.zeros(x.shape[1])
                for iy in range(gh):
                    yy = sy + i * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = sx + j * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(feats[int(b)], yy, xx)
                out[k, :, i, j] = acc / count
    return out


def _round_half_away(v: np.float32) -> int:
    return int(math.floor(v + 0.5)) if v >= 0 else int(math.ceil(v - 0.5))


def roi_pool_loop(x: Tensor, rois: Tensor, ph: int, pw: int, scale: float) -> np.ndarray:
    """The reference kernel's arithmetic in float32, one bin at a time."""
    feats = x.float().numpy()
    f32 = np.float32
    height, width = x.shape[-2:]
    out = np.zeros((rois.shape[0], x.shape[1], ph, pw), dtype=np.float32)
    for k, row in enumerate(rois.float().numpy()):
        b = int(row[0])
        sw, sh, ew, eh = (_round_half_away(f32(v) * f32(scale)) for v in row[1:])
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bin_h, bin_w = f32(rh) / f32(ph), f32(rw) / f32(pw)
        for i in range(ph):
            hs = min(max(int(np.floor(f32(i) * bin_h)) + sh, 0), height)
            he = min(max(int(np.ceil(f32(i + 1) * bin_h)) + sh, 0), height)
            for j in range(pw):
                ws = min(max(int(np.floor(f32(j) * bin_w)) + sw, 0), width)
                we = min(max(int(np.ceil(f32(j + 1) * bin_w)) + sw, 0), width)
                if he > hs and we > ws:
                    out[k, :, i, j] = feats[b, :, hs:he, ws:we].reshape(x.shape[1], -1).max(axis=1)
    return out


def _scene(dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A 2-image batch and RoIs in image pixels (the map has stride 2), many on or past the border."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64).to(dtype)
    xy = torch.rand(14, 2, generator=gen, dtype=torch.float64) * 24 - 2
    wh = torch.rand(14, 2, generator=gen, dtype=torch.float64) * 14
    boxes = torch.cat([xy, xy + wh], dim=1)
    special = torch.tensor(
        [
            [-6.0, -6.0, 30.0, 26.0],  # covers the whole map and more
            [-8.0, -8.0, -3.0, -3.0],  # entirely outside (top-left)
            [21.0, 17.0, 27.0, 23.0],  # across the bottom-right corner
            [4.0, 4.0, 4.0, 4.0],  # degenerate (a point)
            [0.0, 0.0, 0.6, 22.0],  # thin
            [3.0, 5.0, 3.0, 9.0],  # zero width: pool half-way rounding at 1.5 / 2.5
        ],
        dtype=torch.float64,
    )
    boxes = torch.cat([boxes, special])
    batch = (torch.arange(boxes.shape[0]) % 2).to(torch.float64)[:, None]
    return x, torch.cat([batch, boxes], dim=1).to(dtype)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2, 1])
@pytest.mark.parametrize("output_size", [(3, 3), (2, 4)])
def test_roi_align_matches_the_loop_reference(
    aligned: bool, sampling_ratio: int, output_size: tuple[int, int]
) -> None:
    x, rois = _scene(torch.float64)
    expected = roi_align_loop(x, rois, *output_size, 0.5, sampling_ratio, aligned)
    ours = roi_align(x, rois, output_size, spatial_scale=0.5, sampling_ratio=sampling_ratio, aligned=aligned)
    assert ours.shape == (rois.shape[0], 3, *output_size) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-10)
    # float32 input: same values within float32 rounding.
    ours32 = roi_align(
        x.float(),
        rois.float(),
        output_size,
        spatial_scale=0.5,
        sampling_ratio=sampling_ratio,
        aligned=aligned,
    )
    np.testing.assert_allclose(ours32.numpy(), expected, rtol=0, atol=1e-5)
    # The corner cases are covered: the RoI outside the map is 0, the covering one is not.
    assert np.abs(expected[15]).max() == 0 and np.abs(expected[14]).max() > 0


def test_roi_align_aligned_true_uses_pixel_centres() -> None:
    # A map whose value is its column index: with aligned=True, the RoI [c, c + 1) x [0, 1) over
    # pixel c samples exactly its centre c + 0.5 -> value c. aligned=False samples c + 0.5 of the
    # feature grid instead, i.e. value c + 0.5.
    x = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 4, 6).contiguous()
    rois = torch.tensor([[0, c, 0, c + 1, 1] for c in range(1, 5)], dtype=torch.float32)
    aligned = roi_align(x, rois, 1, sampling_ratio=1, aligned=True)
    torch.testing.assert_close(aligned.flatten(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    legacy = roi_align(x, rois, 1, sampling_ratio=1, aligned=False)
    torch.testing.assert_close(legacy.flatten(), torch.tensor([1.5, 2.5, 3.5, 4.5]))


@pytest.mark.parametrize("output_size", [(3, 3), (2, 5), (4, 1)])
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_roi_pool_matches_the_loop_reference(output_size: tuple[int, int], scale: float) -> None:
    x, rois = _scene(torch.float32, seed=1)
    expected = roi_pool_loop(x, rois, *output_size, scale)
    ours = roi_pool(x, rois, output_size, spatial_scale=scale)
    assert ours.shape == (rois.shape[0], 3, *output_size)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-6)
    assert np.abs(expected[15]).max() == 0  # outside the map: empty bins are 0


def test_roi_pool_rounds_halves_away_from_zero() -> None:
    # x1 = 0.5 -> cell 1 (torch.round would give 0), x2 = 2.5 -> cell 3.
    x = torch.arange(8.0).view(1, 1, 1, 8)
    out = roi_pool(x, torch.tensor([[0, 0.5, 0, 2.5, 0]]), (1, 3))
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, 2.0, 3.0]))


def test_gradients_flow_to_the_features() -> None:
    x, rois = _scene(torch.float64, seed=2)
    small = x[:, :, :5, :6].clone().requires_grad_(True)
    few = rois[:5].clone()
    few[:, 1:] = few[:, 1:].clamp(0, 10)
    assert torch.autograd.gradcheck(lambda f: roi_align(f, few, 2, 0.5, 0, True), (small,))
    assert torch.autograd.gradcheck(lambda f: roi_align(f, few, (2, 3), 0.5, 2, False), (small,))
    assert torch.autograd.gradcheck(lambda f: roi_pool(f, few, 2, 0.5), (small,))
    # Max pooling sends each bin's gradient to one arg-max cell.
    grad = torch.autograd.grad(
        roi_pool(small, torch.tensor([[1.0, 1, 1, 7, 5]], dtype=torch.float64), 1, 0.5).sum(), small
    )[0]
    assert float(grad.sum()) == pytest.approx(3.0) and int((grad != 0).sum()) == 3


def test_list_rois_modules_empty_input_and_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    x, rois = _scene(torch.float32, seed=3)
    per_image = [rois[rois[:, 0] == b, 1:] for b in range(2)]
    ordered = torch.cat([rois[rois[:, 0] == b] for b in range(2)])
    torch.testing.assert_close(roi_align(x, per_image, 3, 0.5), roi_align(x, ordered, 3, 0.5))
    torch.testing.assert_close(
        RoIAlign(3, 0.5, sampling_ratio=2, aligned=False)(x, rois), roi_align(x, rois, 3, 0.5, 2, False)
    )
    torch.testing.assert_close(RoIPool((2, 3), 0.5)(x, rois), roi_pool(x, rois, (2, 3), 0.5))
    assert roi_align(x, torch.zeros(0, 5), 3).shape == (0, 3, 3, 3)
    assert roi_pool(x, [torch.zeros(0, 4), torch.zeros(0, 4)], 2).shape == (0, 3, 2, 2)
    # Processing in memory-bounded blocks gives the same result.
    whole_align, whole_pool = roi_align(x, rois, 3, 0.5), roi_pool(x, rois, 3, 0.5)
    monkeypatch.setattr(roi_module, "_INDEX_BUDGET", 50)
    torch.testing.assert_close(roi_align(x, rois, 3, 0.5), whole_align)
    torch.testing.assert_close(roi_pool(x, rois, 3, 0.5), whole_pool)


def test_size_groups_pad_little_and_cover_every_roi() -> None:
    spans = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 0])
    assert roi_module._padded_size(spans).tolist() == [1, 2, 3, 4, 6, 6, 8, 8, 12, 16, 1]
    groups = roi_module.size_groups(torch.tensor([1, 5, 1, 2, 6]), torch.tensor([3, 3, 3, 1, 3]))
    members = sorted(int(i) for g, _, _ in groups for i in g)
    assert members == [0, 1, 2, 3, 4]
    assert sorted((g.tolist(), h, w) for g, h, w in groups) == [([0, 2], 1, 3), ([1, 4], 6, 3), ([3], 2, 1)]


def test_bad_roi_input() -> None:
    x, rois = _scene()
    with pytest.raises(ShapeError, match=r"\(K, 5\)"):
        roi_align(x, rois[:, 1:], 3)
    with pytest.raises(FormatError, match="batch index 2"):
        roi_align(x, torch.tensor([[2.0, 0, 0, 4, 4]]), 3)
    with pytest.raises(FormatError, match="NaN"):
        roi_pool(x, torch.tensor([[0.0, 0, float("nan"), 4, 4]]), 3)
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\)"):
        roi_align(x[0], rois, 3)
    with pytest.raises(FormatError, match="output_size"):
        RoIAlign(0)
