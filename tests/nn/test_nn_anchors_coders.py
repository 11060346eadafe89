"""Anchor generator (counts, exact hand-worked values, valid flags) and the delta box coder."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.nn import AnchorGenerator, DeltaXYWHBBoxCoder, box_area


def test_anchor_counts_per_level() -> None:
    gen = AnchorGenerator(
        strides=[8, 16, 32], ratios=[0.5, 1.0, 2.0], octave_base_scale=4, scales_per_octave=3
    )
    assert gen.num_levels == 3
    assert gen.num_base_anchors == [9, 9, 9]
    sizes = [(10, 7), (5, 4), (3, 2)]
    anchors = gen.grid_anchors(sizes)
    assert [tuple(a.shape) for a in anchors] == [(10 * 7 * 9, 4), (5 * 4 * 9, 4), (3 * 2 * 9, 4)]
    assert all(a.dtype == torch.float32 for a in anchors)
    flags = gen.valid_flags(sizes, (80, 56))
    assert [f.shape[0] for f in flags] == [a.shape[0] for a in anchors]
    # Different anchor counts per level through base sizes are fine too.
    two = AnchorGenerator(strides=[4, 8], ratios=[1.0], scales=[1.0, 2.0])
    assert [a.shape[0] for a in two.grid_anchors([(3, 3), (2, 2)])] == [18, 8]


def test_anchor_values_hand_worked() -> None:
    # stride 8, base size 8, ratios h/w in (1, 4), scale 1:
    #   ratio 1: w = h = 8            -> (-4, -4, 4, 4)
    #   ratio 4: w = 8 / 2, h = 8 * 2 -> (-2, -8, 2, 8)
    # cells of a 2 x 2 map shift by (0, 0), (8, 0), (0, 8), (8, 8), location-major.
    gen = AnchorGenerator(strides=[8], ratios=[1.0, 4.0], scales=[1.0])
    expected = torch.tensor(
        [
            [-4, -4, 4, 4], [-2, -8, 2, 8],
            [4, -4, 12, 4], [6, -8, 10, 8],
            [-4, 4, 4, 12], [-2, 0, 2, 16],
            [4, 4, 12, 12], [6, 0, 10, 16],
        ],
        dtype=torch.float32,
    )  # fmt: skip
    torch.testing.assert_close(gen.grid_anchors([(2, 2)])[0], expected, rtol=0, atol=0)
    torch.testing.assert_close(gen.base_anchors[0], expected[:2], rtol=0, atol=0)


def test_anchor_values_centre_offset_rectangular_stride_and_scales() -> None:
    # stride (4 wide, 2 high), base size 4, scale 2 -> 8 x 8 anchors; offset 0.5 centres them at the
    # cell centre (0.5 * 4, 0.5 * 2) = (2, 1). One row of 3 cells shifts x by 4.
    gen = AnchorGenerator(strides=[(4, 2)], ratios=[1.0], scales=[2.0], base_sizes=[4], center_offset=0.5)
    expected = torch.tensor([[-2, -3, 6, 5], [2, -3, 10, 5], [6, -3, 14, 5]], dtype=torch.float32)
    torch.testing.assert_close(gen.grid_anchors([(1, 3)])[0], expected, rtol=0, atol=0)
    # A second row shifts y by the height stride 2.
    two_rows = gen.grid_anchors([(2, 1)])[0]
    torch.testing.assert_close(two_rows, torch.tensor([[-2.0, -3, 6, 5], [-2, -1, 6, 7]]), rtol=0, atol=0)


def test_octave_scales_keep_the_area_across_ratios() -> None:
    gen = AnchorGenerator(strides=[8], ratios=[0.5, 1.0, 2.0], octave_base_scale=4, scales_per_octave=3)
    assert gen.scales == pytest.approx([4.0, 4 * 2 ** (1 / 3), 4 * 2 ** (2 / 3)])
    base = gen.base_anchors[0]  # ratio-major: [(r0, s0), (r0, s1), (r0, s2), (r1, s0), ...]
    areas = box_area(base).view(3, 3)
    expected = torch.tensor([(8 * s) ** 2 for s in gen.scales])
    for row in areas:
        torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-3)
    wh = torch.stack([base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]], dim=1).view(3, 3, 2)
    torch.testing.assert_close(wh[:, 0, 1] / wh[:, 0, 0], torch.tensor([0.5, 1.0, 2.0]))
    centres = (base[:, :2] + base[:, 2:]) / 2
    torch.testing.assert_close(centres, torch.zeros_like(centres), rtol=0, atol=1e-5)


def test_valid_flags_mark_cells_over_the_unpadded_image() -> None:
    gen = AnchorGenerator(strides=[8], ratios=[1.0, 2.0], scales=[1.0])
    # 4 x 4 cells of a padded 32 x 32 batch; the image is 20 high, 9 wide -> rows < 3, cols < 2.
    flags = gen.valid_flags([(4, 4)], (20, 9))[0].view(4, 4, 2)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:3, :2] = True
    assert torch.equal(flags, expected[..., None].expand(4, 4, 2))


def test_bad_anchor_arguments() -> None:
    with pytest.raises(FormatError, match="either scales"):
        AnchorGenerator(strides=[8], scales=[1.0], octave_base_scale=4, scales_per_octave=3)
    with pytest.raises(FormatError, match="either scales"):
        AnchorGenerator(strides=[8])
    with pytest.raises(FormatError, match="ratios"):
        AnchorGenerator(strides=[8], ratios=[0.0], scales=[1.0])
    with pytest.raises(FormatError, match="strides"):
        AnchorGenerator(strides=[], scales=[1.0])
    with pytest.raises(FormatError, match="2 anchor levels"):
        AnchorGenerator(strides=[8, 16], scales=[1.0]).grid_anchors([(4, 4)])


# ------------------------------------------------------------------------------------ box coder
def _random_boxes(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = torch.rand(n, 2, generator=gen) * 50 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize(
    ("means", "stds"),
    [((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)), ((0.1, -0.2, 0.05, 0.3), (0.1, 0.1, 0.2, 0.2))],
)
def test_coder_round_trip(means: tuple[float, ...], stds: tuple[float, ...]) -> None:
    coder = DeltaXYWHBBoxCoder(target_means=means, target_stds=stds)
    anchors, gts = _random_boxes(500, 0), _random_boxes(500, 1)
    deltas = coder.encode(anchors, gts)
    torch.testing.assert_close(coder.decode(anchors, deltas), gts, rtol=1e-5, atol=1e-3)
    # And the other way round: encode(decode(d)) == d for moderate deltas.
    d = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(coder.encode(anchors, coder.decode(anchors, d)), d, rtol=1e-4, atol=1e-4)


def test_coder_hand_worked_deltas() -> None:
    # anchor (0, 0, 10, 20): centre (5, 10), size 10 x 20; gt (5, 0, 25, 20): centre (15, 10), size 20 x 20.
    # raw deltas: dx = 10 / 10 = 1, dy = 0, dw = log 2, dh = log 1 = 0.
    anchor = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    gt = torch.tensor([[5.0, 0.0, 25.0, 20.0]])
    plain = DeltaXYWHBBoxCoder()
    torch.testing.assert_close(plain.encode(anchor, gt), torch.tensor([[1.0, 0.0, math.log(2), 0.0]]))
    normed = DeltaXYWHBBoxCoder(target_means=(0.5, 0.0, 0.0, 0.0), target_stds=(0.1, 0.1, 0.2, 0.2))
    expected = torch.tensor([[(1.0 - 0.5) / 0.1, 0.0, math.log(2) / 0.2, 0.0]])
    torch.testing.assert_close(normed.encode(anchor, gt), expected)
    torch.testing.assert_close(normed.decode(anchor, expected), gt)


def test_coder_clamps_dw_dh_and_clips_to_the_image() -> None:
    coder = DeltaXYWHBBoxCoder()
    anchor = torch.tensor([[10.0, 10.0, 20.0, 20.0]])
    huge = coder.decode(anchor, torch.tensor([[0.0, 0.0, 100.0, -100.0]]))
    # |log(16 / 1000)| caps the growth at 62.5x and the shrink at 1 / 62.5.
    torch.testing.assert_close(huge[0, 2] - huge[0, 0], torch.tensor(10.0 * 62.5))
    torch.testing.assert_close(huge[0, 3] - huge[0, 1], torch.tensor(10.0 / 62.5))
    assert torch.isfinite(coder.decode(anchor, torch.tensor([[1e30, -1e30, 1e30, 1e30]]))).all()
    clipped = coder.decode(anchor, torch.tensor([[0.0, 0.0, 2.0, 2.0]]), max_shape=(30, 25))
    # unclipped: centre (15, 15), size 10 * e^2 = 73.9 -> spans beyond both sides.
    torch.testing.assert_close(clipped, torch.tensor([[0.0, 0.0, 25.0, 30.0]]))
    no_clip = DeltaXYWHBBoxCoder(clip_border=False).decode(
        anchor, torch.tensor([[0.0, 0.0, 2.0, 2.0]]), max_shape=(30, 25)
    )
    assert no_clip[0, 0] < 0
    centre_clamped = DeltaXYWHBBoxCoder(ctr_clamp=4).decode(anchor, torch.tensor([[10.0, -10.0, 0.0, 0.0]]))
    torch.testing.assert_close(centre_clamped, torch.tensor([[14.0, 6.0, 24.0, 16.0]]))


def test_coder_batched_per_image_shapes_and_class_specific_deltas() -> None:
    coder = DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    anchors = _random_boxes(6, 3)
    deltas = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(4))
    sizes = torch.tensor([[40.0, 60.0], [80.0, 30.0]])
    boxes = coder.decode(anchors, deltas, max_shape=sizes)
    assert boxes.shape == (2, 6, 4)
    for b in range(2):
        torch.testing.assert_close(boxes[b], coder.decode(anchors, deltas[b], max_shape=sizes[b].tolist()))
        assert float(boxes[b][:, [0, 2]].max()) <= float(sizes[b, 1]) and float(
            boxes[b][:, [1, 3]].max()
        ) <= float(sizes[b, 0])
    per_class = torch.randn(6, 3 * 4, generator=torch.Generator().manual_seed(5))
    decoded = coder.decode(anchors, per_class)
    assert decoded.shape == (6, 12)
    for k in range(3):
        torch.testing.assert_close(
            decoded[:, 4 * k : 4 * k + 4], coder.decode(anchors, per_class[:, 4 * k : 4 * k + 4])
        )


def test_coder_bad_input() -> None:
    with pytest.raises(FormatError, match="target_stds"):
        DeltaXYWHBBoxCoder(target_stds=(0.1, 0.1, 0.0, 0.2))
    with pytest.raises(ShapeError, match="one shape"):
        DeltaXYWHBBoxCoder().encode(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ShapeError, match="4 \\* K"):
        DeltaXYWHBBoxCoder().decode(torch.zeros(3, 4), torch.zeros(3, 5))
