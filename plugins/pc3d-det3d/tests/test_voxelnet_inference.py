"""`VoxelDetector.optimize_for_inference`: the folded, channels-last copy detects what the model does;
a detector built ``channels_last`` trains like the plain one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pc3d.config import build, load_config
from pc3d.nn.winograd import WinogradConv2d

CONFIG = (
    Path(__file__).resolve().parents[3]
    / "configs"
    / "pointpillars"
    / "pointpillars-small_hv-secfpn_synthetic-3d-3class.yaml"
)


def test_optimised_pointpillars_equals_plain() -> None:
    torch.manual_seed(0)
    model = build(load_config(CONFIG).node("model"), kind="model")
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():  # non-trivial statistics, so folding has something to fold
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    nn.init.zeros_(model.bbox_head.conv_cls.bias)  # real candidates for the post-processing
    model.eval()
    fast = model.optimize_for_inference()
    assert fast.voxel_encoder.folded_path_applies()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert (
        any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        and not model.voxel_encoder.folded_path_applies()
    )
    points = torch.rand(4000, 4, generator=gen) * torch.tensor([51.2, 64.0, 4.0, 1.0]) + torch.tensor(
        [0.0, -32.0, -3.0, 0.0]
    )
    with torch.no_grad():
        for a, b in zip(model([points]), fast([points]), strict=True):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        expected, got = model.predict([points])[0], fast.predict([points])[0]
    assert len(got.scores) == len(expected.scores) > 0
    torch.testing.assert_close(got.scores, expected.scores, atol=1e-4, rtol=1e-4)
    # A random model gives every anchor over empty ground the same score, so tied boxes may come
    # out in another order (and NMS keep another of the twins). Every box whose score is unique
    # (no other within 1e-5) must be found, at the same place, in the optimised output.
    gaps = (expected.scores[:, None] - expected.scores[None, :]).abs()
    gaps.fill_diagonal_(float("inf"))
    unique = gaps.min(dim=1).values > 1e-5
    assert int(unique.sum()) > 0
    distance = torch.cdist(expected.boxes.tensor[unique], got.boxes.tensor).min(dim=1).values
    assert bool((distance < 1e-3).all())


def test_channels_last_detector_trains_like_the_plain_one() -> None:
    torch.manual_seed(0)
    plain = build(load_config(CONFIG, ["model.channels_last=false"]).node("model"), kind="model")
    torch.manual_seed(0)
    fast = build(load_config(CONFIG, ["model.channels_last=true"]).node("model"), kind="model")
    assert fast.backbone.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.backbone.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.middle_encoder.channels_last and not plain.middle_encoder.channels_last
    fast.load_state_dict(plain.state_dict())  # same names and shapes; the layout stays NHWC
    assert fast.backbone.blocks[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(2)
    points = torch.rand(4000, 4, generator=gen) * torch.tensor([51.2, 64.0, 4.0, 1.0]) + torch.tensor(
        [0.0, -32.0, -3.0, 0.0]
    )
    boxes = torch.tensor([[20.0, 3.0, -1.7, 3.9, 1.6, 1.56, 0.3], [35.0, -8.0, -1.7, 0.8, 0.6, 1.73, 1.0]])
    labels = torch.tensor([0, 1])
    losses = [model.loss([points], [boxes], [labels]) for model in (plain, fast)]
    for key in ("loss_cls", "loss_bbox", "loss_dir", "loss"):
        torch.testing.assert_close(losses[1][key], losses[0][key], atol=1e-5, rtol=1e-5)
    for loss in losses:
        loss["loss"].backward()
    grads = [dict((n, p.grad) for n, p in model.named_parameters()) for model in (plain, fast)]
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        assert grad is not None and grads[1][name] is not None, name
        torch.testing.assert_close(grads[1][name], grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize(
    "name", ["pointpillars_hv-secfpn_kitti-3d-3class", "second_hv-secfpn_kitti-3d-3class"]
)
def test_full_size_optimised_detectors_take_empty_frames(name: str) -> None:
    if name.startswith("second"):
        pytest.importorskip("spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2")
    torch.manual_seed(0)
    model = build(load_config(name).node("model"), kind="model").eval()
    fast = model.optimize_for_inference()
    assert any(isinstance(m, WinogradConv2d) for m in fast.modules())
    empty = torch.zeros(0, 4)
    with torch.no_grad():
        for a, b in zip(model([empty]), fast([empty]), strict=True):
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
        (detections,) = fast.predict([empty])
    assert detections.boxes.tensor.shape[1] == 7 and len(detections.scores) == len(detections.labels)
