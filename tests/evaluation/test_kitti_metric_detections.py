"""KittiMetric evaluates a 3D detector's LiDAR detections against KITTI labels (via calibration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.data.synthetic import SYNTHETIC_CALIB_TEXT, generate_frame
from pc3d.errors import FormatError
from pc3d.evaluation.kitti import KittiMetric
from pc3d.io.kitti import detections_to_kitti_labels, parse_kitti_labels, read_kitti_calib
from pc3d.structures import Detections3D, LiDARBoxes3D

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def _frame(tmp_path: Path, index: int):  # type: ignore[no-untyped-def]
    frame = generate_frame(11, index)
    calib_path = tmp_path / "calib.txt"
    calib_path.write_text(SYNTHETIC_CALIB_TEXT)
    labels = parse_kitti_labels(frame.label_text, dtype=np.float64)
    keep = frame.num_points > 0
    boxes = torch.from_numpy(frame.layout.boxes[keep]).float()
    names = frame.layout.types[keep]
    dets = Detections3D(
        LiDARBoxes3D(boxes),
        torch.linspace(0.9, 0.5, len(boxes)),
        torch.tensor([CLASSES.index(n) for n in names]),
    )
    return labels, dets, read_kitti_calib(calib_path)


def test_ground_truth_as_detections_scores_100(tmp_path: Path) -> None:
    metric = KittiMetric(classes=CLASSES)
    # The protocol samples precision at one score threshold per true positive: AP40 reaches 100
    # only with at least 40 objects of the difficulty, hence 24 frames.
    frames = [_frame(tmp_path, i) for i in range(24)]
    metric.update(
        [d for _, d, _ in frames],
        {"kitti_labels": [g for g, _, _ in frames], "calib": [c for _, _, c in frames]},
    )
    result = metric.compute()
    assert result["KITTI/Car_BEV_AP40_moderate_strict"] == pytest.approx(100.0, abs=0.01)
    assert result["KITTI/Car_3D_AP40_moderate_strict"] == pytest.approx(100.0, abs=0.01)
    # The projected 2D boxes agree with the labels' (written with 2 decimals): 2D AP too.
    assert result["KITTI/Car_2D_AP40_moderate_strict"] == pytest.approx(100.0, abs=0.01)


def test_shifted_detections_lose_strict_ap(tmp_path: Path) -> None:
    labels, dets, calib = _frame(tmp_path, 0)
    dets.boxes.tensor[:, 0] += 1.0  # a metre off: IoU < 0.7 for every car
    metric = KittiMetric(classes=CLASSES)
    metric.update([dets], {"kitti_labels": [labels], "calib": [calib]})
    assert metric.compute()["KITTI/Car_BEV_AP40_moderate_strict"] < 50.0


def test_records_camera_frame_and_errors(tmp_path: Path) -> None:
    labels, dets, calib = _frame(tmp_path, 1)
    records = detections_to_kitti_labels(dets, CLASSES, calib)
    objects = labels.objects()
    assert np.allclose(records.location, objects.location, atol=0.01)
    assert np.allclose(records.dims_hwl, objects.dims_hwl, atol=0.01)
    assert np.allclose(np.abs(np.angle(np.exp(1j * (records.rotation_y - objects.rotation_y)))), 0, atol=0.01)
    # Boxes the protocol cannot see (behind the car, or beyond 70.4 m) are not written, unless asked.
    moved = Detections3D(LiDARBoxes3D(dets.boxes.tensor.clone()), dets.scores, dets.labels)
    moved.boxes.tensor[0, 0] = -moved.boxes.tensor[0, 0]  # mirrored behind the sensor
    moved.boxes.tensor[1, 0] = 75.0
    kept = detections_to_kitti_labels(moved, CLASSES, calib)
    assert len(kept.types) == len(dets) - 2 and np.allclose(kept.score, dets.scores[2:].numpy())
    every = detections_to_kitti_labels(moved, CLASSES, calib, keep_all=True)
    assert len(every.types) == len(dets) and np.allclose(every.location[2:], records.location[2:])
    with pytest.raises(FormatError, match="calibration"):
        KittiMetric(classes=CLASSES).update([dets], {"kitti_labels": [labels]})
    with pytest.raises(FormatError, match="must index class_names"):
        detections_to_kitti_labels(dets, ["Car"], calib)
