"""PointPillars, SECOND and CenterPoint on a CUDA device: the CPU's raw outputs and boxes, and
training steps that stay on the device (skipped without one; ``tools/gpu_check.sh`` runs them)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from det3d_training import SMALL_MODELS, kitti_frames, small_model
from torch import nn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _zero_class_priors(model: nn.Module) -> None:
    """Class logits' biases (1% prior) set to 0, so that an untrained model detects something."""
    for name, param in model.bbox_head.named_parameters():
        if name in ("conv_cls.bias",) or (
            ".heatmap." in name and name.endswith("bias") and bool((param < -1).all())
        ):
            nn.init.zeros_(param)


def _tensors(output: object) -> list[torch.Tensor]:
    """The tensors of a head's raw output (nested tuples, lists and mappings), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    items = output.values() if isinstance(output, dict) else output
    return [t for item in items for t in _tensors(item)]  # type: ignore[attr-defined]


def check_device_matches_cpu(name: str, device: str) -> None:
    """The shrunk zoo detector ``name`` on ``device`` against its CPU twin: raw outputs, boxes
    (plain and optimised), then two training steps on the device."""
    cpu = small_model(name).eval()
    _zero_class_priors(cpu)
    moved = copy.deepcopy(cpu).to(device)
    frames = kitti_frames(max_points=20000)[:2]
    points = [f["points"].tensor for f in frames]
    on_device = [p.to(device) for p in points]
    with torch.no_grad():
        for want, have in zip(_tensors(cpu(points)), _tensors(moved(on_device)), strict=True):
            torch.testing.assert_close(have.cpu(), want, atol=1e-3, rtol=1e-3)
        pairs = ((cpu, moved), (cpu.optimize_for_inference(), moved.optimize_for_inference()))
        for plain, other in pairs:
            expected, got = plain.predict(points), other.predict(on_device)
            assert sum(len(d) for d in expected) > 0
            for want_dets, have_dets in zip(expected, got, strict=True):
                assert have_dets.scores.device.type == torch.device(device).type
                assert len(have_dets) == len(want_dets)
                torch.testing.assert_close(have_dets.scores.cpu(), want_dets.scores, atol=1e-3, rtol=1e-3)
    moved.train()
    optimizer = torch.optim.Adam(moved.parameters(), lr=0.01)
    boxes = [f["gt_boxes"].to(device) for f in frames]
    labels = [f["gt_labels"].to(device) for f in frames]
    for _ in range(2):
        losses = moved.loss(on_device, boxes, labels)
        assert math.isfinite(float(losses["loss"].detach()))
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert all(p.device.type == torch.device(device).type for p in moved.parameters())


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_detector_on_cuda_matches_the_cpu_and_trains(name: str) -> None:
    check_device_matches_cpu(name, "cuda")
