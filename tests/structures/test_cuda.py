"""The structures on a CUDA device give the CPU's results and stay on the device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.structures import CameraBoxes3D, LiDARBoxes3D, LiDARPoints, convert_boxes, convert_points

from ._kitti import lidar_to_cam, read_labels, read_scan

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_conversions_on_cuda_match_cpu() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = torch.rand(1000, 9, generator=gen) * 20
    rt = lidar_to_cam("000001")
    for kind in ("camera", "depth"):
        cpu = convert_boxes(boxes, "lidar", kind, rt if kind == "camera" else None)
        gpu = convert_boxes(boxes.cuda(), "lidar", kind, torch.from_numpy(rt) if kind == "camera" else None)
        assert gpu.is_cuda and gpu.dtype == torch.float32
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-5)
    points = convert_points(boxes[:, :4].cuda(), "lidar", "camera", rt)
    assert points.is_cuda
    torch.testing.assert_close(
        points.cpu(), convert_points(boxes[:, :4], "lidar", "camera", rt), atol=1e-4, rtol=1e-5
    )


def test_structures_on_cuda() -> None:
    types, cam = read_labels("000001")
    keep = [i for i, t in enumerate(types) if t != "DontCare"]
    cpu_boxes = CameraBoxes3D(cam[keep]).convert_to("lidar", np.linalg.inv(lidar_to_cam("000001")))
    boxes = CameraBoxes3D(torch.from_numpy(cam[keep]).cuda())
    assert boxes.device.type == "cuda"
    lidar = boxes.convert_to("lidar", np.linalg.inv(lidar_to_cam("000001")))
    assert isinstance(lidar, LiDARBoxes3D) and lidar.device.type == "cuda"
    torch.testing.assert_close(lidar.tensor.cpu(), cpu_boxes.tensor, atol=1e-4, rtol=1e-5)
    scan = LiDARPoints(read_scan("000001")).to("cuda")
    first = lidar.points_in_boxes(scan)
    assert first.is_cuda
    # Float rounding differs between devices: only points on a face may disagree.
    assert int((first.cpu() != cpu_boxes.points_in_boxes(scan.to("cpu"))).sum()) <= 3
    assert int((first >= 0).sum()) > 50
    assert lidar.corners.is_cuda and lidar.nearest_bev.is_cuda
    lidar.rotate(0.3, scan)
    lidar.flip("horizontal", scan)
    assert int((lidar.points_in_boxes(scan) != first).sum()) <= 3
    picked = lidar[torch.tensor([True, False, True], device="cuda")]
    assert picked.device.type == "cuda" and len(picked) == 2
    assert lidar.to("cpu").device.type == "cpu" and isinstance(lidar.numpy(), np.ndarray)
