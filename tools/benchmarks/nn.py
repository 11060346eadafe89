"""`pc3d.nn` suite: RoI Align, RoI Pool and RPN proposals at Faster R-CNN sizes.

Sizes: a stride-16 feature map of an 800 x 1088 image pair, `[2, 256, 50, 68]`, 512 RoIs per
image (1,024 in all, 7 x 7 output), RoIs drawn uniformly with sides 16..400 pixels. Peers, written
here and run on the same inputs in the same process (torchvision is not a dependency):

- RoI Align: `torch.nn.functional.grid_sample` over all RoIs of an image in one call with a fixed
  2 x 2 sampling grid (border padding), then a 2 x 2 average pool -- the usual pure-torch RoI
  Align. Its values differ from the reference kernel's only for samples more than a cell outside
  the map, so the row checks agreement on RoIs that lie inside the image.
- RoI Pool: a per-RoI loop cropping the RoI and calling `adaptive_max_pool2d` (same bins as the
  reference kernel for RoIs inside the map; checked).
- RPN proposals: a per-image, per-level loop of top-k, decode and `pc3d.ops.nms_2d` (the test
  suite's reference, `tests/nn/reference_rpn.py`; checked equal) against the single batched call, 2 images x 5 FPN levels.

On the CPU torch gets one thread for both sides.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import device_sync, median_time, row, torch_suite
from pc3d.nn import AnchorGenerator, RPNHead, roi_align, roi_pool

_ROOT = Path(__file__).resolve().parents[2]

STRIDE = 16
IMAGE = (800, 1088)
ROIS_PER_IMAGE = 512


def random_rois(num_per_image: int, batch: int, seed: int) -> torch.Tensor:
    """RoIs inside the image, a stride away from its right/bottom edges (so no bin is clipped)."""
    gen = torch.Generator().manual_seed(seed)
    h, w = IMAGE
    wh = 16 + torch.rand(batch * num_per_image, 2, generator=gen) * 384
    xy = torch.rand(batch * num_per_image, 2, generator=gen) * (torch.tensor([w, h]) - STRIDE - wh)
    index = torch.arange(batch).repeat_interleave(num_per_image).float()[:, None]
    return torch.cat([index, xy, xy + wh], dim=1)


def grid_sample_roi_align(feats: torch.Tensor, rois: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    """aligned=True RoI Align with a 2 x 2 grid via one grid_sample per image."""
    _, _, h, w = feats.shape
    out = []
    steps = (torch.arange(2 * size, dtype=feats.dtype, device=feats.device) + 0.5) / (2 * size)
    for b in range(feats.shape[0]):
        r = rois[rois[:, 0] == b, 1:] * scale - 0.5
        xs = r[:, 0:1] + steps[None] * (r[:, 2:3] - r[:, 0:1])  # [K, 2S] feature coordinates
        ys = r[:, 1:2] + steps[None] * (r[:, 3:4] - r[:, 1:2])
        # align_corners=True maps -1..1 onto cell centres 0..W-1, the RoI Align frame.
        gx = xs / (w - 1) * 2 - 1
        gy = ys / (h - 1) * 2 - 1
        grid = torch.stack(
            [gx[:, None, :].expand(-1, 2 * size, -1), gy[:, :, None].expand(-1, -1, 2 * size)], dim=-1
        )
        k = grid.shape[0]
        # Border padding clamps like the reference kernel for samples within a cell of the edge.
        sampled = F.grid_sample(
            feats[b : b + 1],
            grid.reshape(1, k * 2 * size, 2 * size, 2),
            align_corners=True,
            padding_mode="border",
        )
        sampled = sampled.view(feats.shape[1], k, 2 * size, 2 * size).transpose(0, 1)
        out.append(F.avg_pool2d(sampled, 2))
    return torch.cat(out)


def loop_roi_pool(feats: torch.Tensor, rois: torch.Tensor, size: int, scale: float) -> torch.Tensor:
    out = []
    for b, x1, y1, x2, y2 in rois.tolist():
        # Half away from zero, as the reference kernel rounds (all values here are >= 0).
        c = [int(math.floor(v * scale + 0.5)) for v in (x1, y1, x2, y2)]
        crop = feats[int(b), :, c[1] : c[3] + 1, c[0] : c[2] + 1]
        out.append(F.adaptive_max_pool2d(crop, size))
    return torch.stack(out)


@torch_suite(threads=1)
def run(dev: torch.device) -> list[dict]:
    sync = device_sync(dev)
    rows = []
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 256, IMAGE[0] // STRIDE, IMAGE[1] // STRIDE, generator=gen).to(dev)
    scale = 1 / STRIDE
    rois = random_rois(ROIS_PER_IMAGE, 2, seed=1).to(dev)
    size = f"2x256x50x68, {2 * ROIS_PER_IMAGE} RoIs, 7x7"

    ours_align = roi_align(feats, rois, 7, scale, sampling_ratio=2, aligned=True)
    torch.testing.assert_close(ours_align, grid_sample_roi_align(feats, rois, 7, scale), atol=1e-4, rtol=1e-4)
    ours = median_time(lambda: roi_align(feats, rois, 7, scale, 2, True), repeats=5, sync=sync)
    peer_forward = median_time(lambda: grid_sample_roi_align(feats, rois, 7, scale), repeats=5, sync=sync)
    rows.append(row("roi_align fwd (ratio 2)", size, ours, "grid_sample per image", peer_forward))

    grad_feats = feats.clone().requires_grad_(True)

    def backward(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        return lambda: fn(grad_feats).sum().backward()

    ours = median_time(backward(lambda f: roi_align(f, rois, 7, scale, 2, True)), repeats=5, sync=sync)
    peer = median_time(backward(lambda f: grid_sample_roi_align(f, rois, 7, scale)), repeats=5, sync=sync)
    rows.append(row("roi_align fwd+bwd (ratio 2)", size, ours, "grid_sample per image", peer))
    ours = median_time(lambda: roi_align(feats, rois, 7, scale, 0, True), repeats=5, sync=sync)
    rows.append(
        row("roi_align fwd (adaptive ratio)", size, ours, "grid_sample per image (ratio 2)", peer_forward)
    )

    torch.testing.assert_close(roi_pool(feats, rois, 7, scale), loop_roi_pool(feats, rois, 7, scale))
    ours = median_time(lambda: roi_pool(feats, rois, 7, scale), repeats=5, sync=sync)
    peer = median_time(lambda: loop_roi_pool(feats, rois, 7, scale), repeats=3, sync=sync)
    rows.append(row("roi_pool fwd", size, ours, "per-RoI adaptive_max_pool2d", peer))
    ours = median_time(backward(lambda f: roi_pool(f, rois, 7, scale)), repeats=5, sync=sync)
    peer = median_time(backward(lambda f: loop_roi_pool(f, rois, 7, scale)), repeats=3, sync=sync)
    rows.append(row("roi_pool fwd+bwd", size, ours, "per-RoI adaptive_max_pool2d", peer))

    sys.path.insert(0, str(_ROOT / "tests"))
    from nn.reference_rpn import reference_proposals  # the test suite's peer

    torch.manual_seed(0)
    anchors = AnchorGenerator(strides=[4, 8, 16, 32, 64], ratios=[0.5, 1.0, 2.0], scales=[8.0])
    head = RPNHead(
        in_channels=256, feat_channels=256, anchor_generator=anchors, nms_pre=1000, max_per_img=1000
    ).to(dev)
    levels = [(IMAGE[0] // s, IMAGE[1] // s) for s in (4, 8, 16, 32, 64)]
    scores = [torch.randn(2, 3, h, w, generator=gen).to(dev) * 3 for h, w in levels]
    deltas = [torch.randn(2, 12, h, w, generator=gen).to(dev) * 0.3 for h, w in levels]
    sizes = [IMAGE, (760, 1000)]
    for a, b in zip(
        head.get_proposals(scores, deltas, sizes), reference_proposals(head, scores, deltas, sizes)
    ):
        torch.testing.assert_close(a, b)
    ours = median_time(lambda: head.get_proposals(scores, deltas, sizes), repeats=5, sync=sync)
    peer = median_time(lambda: reference_proposals(head, scores, deltas, sizes), repeats=5, sync=sync)
    rows.append(
        row("RPN proposals (5 levels, 1000 pre-NMS)", "2 images 800x1088", ours, "per image/level loop", peer)
    )
    return rows
