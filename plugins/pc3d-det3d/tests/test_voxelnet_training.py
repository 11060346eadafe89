"""PointPillars and SECOND (the zoo configs, shrunk) learn on the shipped KITTI frames, in one
process and under ``torchrun`` with two gloo processes."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from det3d_training import KITTI_ROOT, SMALL_MODELS, assert_loss_falls, small_model, train_on_kitti_frames

# PointPillars and SECOND; CenterPoint's tests are in test_center_point.py.
SMALL = [name for name in SMALL_MODELS if not name.startswith("centerpoint")]


@pytest.mark.parametrize("name", SMALL)
def test_training_on_the_shipped_kitti_frames_lowers_the_loss(name: str) -> None:
    model = small_model(name)
    losses, points = train_on_kitti_frames(model, 12)
    assert_loss_falls(losses, 0.5)
    model.eval()
    detections = model.predict(points)
    assert len(detections) == 4
    assert all(d.boxes.tensor.shape[1] == 7 and bool((d.labels < 3).all()) for d in detections)


@pytest.mark.parametrize("name", SMALL)
def test_frames_without_points_or_boxes_train_and_predict(name: str) -> None:
    model = small_model(name)
    empty, no_boxes, no_labels = torch.zeros(0, 4), torch.zeros(0, 7), torch.zeros(0, dtype=torch.long)
    cloud = torch.rand(500, 4) * torch.tensor([60.0, 30.0, 3.0, 1.0]) + torch.tensor([5.0, -15.0, -2.5, 0.0])
    for clouds in ([empty], [cloud, empty]):
        losses = model.loss(clouds, [no_boxes] * len(clouds), [no_labels] * len(clouds))
        assert (
            all(math.isfinite(float(v.detach())) for v in losses.values())
            and float(losses["loss_bbox"].detach()) == 0.0
        )
        losses["loss"].backward()
    model.eval()
    for fast in (model, model.optimize_for_inference()):
        with torch.no_grad():
            detections = fast.predict([empty, cloud])
        assert len(detections) == 2
        assert all(d.boxes.tensor.shape[1] == 7 and len(d.scores) == len(d.labels) for d in detections)
        # The untrained head's 1% foreground prior scores every anchor of an empty map ~0.01,
        # below the published score threshold (0.1): an empty frame gives no boxes.
        assert len(detections[0]) == 0


@pytest.mark.slow
def test_pointpillars_trains_and_evaluates_under_torchrun_with_two_gloo_processes(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    work = tmp_path / "run"
    frames = '["000000", "000001", "000002", "000004"]'
    # torchrun as tests/engine/test_engine_dist.py starts it, spelled out: a plugin's tests import
    # nothing from the core's tests.
    argv = [
        torchrun,
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "pc3d",
        "train",
        "pointpillars_hv-secfpn_kitti-3d-3class",
        "--work-dir",
        str(work),
        "--device",
        "cpu",
        "--set",
        *SMALL_MODELS["pointpillars_hv-secfpn_kitti-3d-3class"],
        "model.channels_last=true",
        f"data_root={KITTI_ROOT}",
        f"data.train.dataset.split={frames}",
        f"data.val.dataset.split={frames}",
        "data.train.dataset.pipeline=[{type: RandomFlip3D, flip_ratio_bev_horizontal: 0.5}, {type: PointShuffle}]",
        "data.train.batch_size=1",
        "data.train.num_workers=0",
        "data.val.num_workers=0",
        "schedule.epochs=2",
        "train.log_every=1",
        "runtime.num_threads=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stderr
    checkpoint = torch.load(work / "epoch_2.pth", weights_only=True)
    # Four frames, batch 1 per process, two processes: two iterations per epoch.
    assert checkpoint["world_size"] == 2 and checkpoint["iters_per_epoch"] == 2
    losses = [
        json.loads(line)["loss"]
        for line in (work / "log.jsonl").read_text().splitlines()
        if "loss" in json.loads(line)
    ]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    metrics = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    # The validation frames were split between the processes and gathered for one KITTI evaluation.
    assert metrics and "KITTI/Car_BEV_AP40_moderate_strict" in metrics[-1]
