"""Opt-in: pc3d against the original ``kitti_object_eval_python`` itself.

The port is not a package pc3d can depend on (it ships inside MMDetection3D/OpenPCDet and needs
numba), so this test runs only when told where to find it::

    python -m venv /tmp/portenv && /tmp/portenv/bin/pip install numba shapely
    pip download --no-deps mmdet3d==1.4.0 -d /tmp/w
    unzip -q /tmp/w/mmdet3d-1.4.0-py3-none-any.whl 'mmdet3d/evaluation/functional/kitti_utils/*' -d /tmp/w
    PC3D_KITTI_PORT_DIR=/tmp/w/mmdet3d/evaluation/functional/kitti_utils \\
    PC3D_KITTI_PORT_PYTHON=/tmp/portenv/bin/python \\
        python -m pytest tests/evaluation/test_kitti_port_crosscheck.py

(``PC3D_KITTI_PORT_CASES`` sets the number of random scenes, default 20.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pc3d.evaluation import kitti_eval
from pc3d.evaluation.kitti_labels import KittiEvalLabels

from .synth import perfect_detections, random_frames

PORT_DIR = os.environ.get("PC3D_KITTI_PORT_DIR")
pytestmark = pytest.mark.skipif(
    not PORT_DIR, reason="set PC3D_KITTI_PORT_DIR (and PC3D_KITTI_PORT_PYTHON) to run the port"
)


def as_port_annotation(labels: KittiEvalLabels) -> dict:
    n = len(labels)
    return {
        "name": np.array(labels.name, dtype=object),
        "truncated": labels.truncated,
        "occluded": labels.occluded,
        "alpha": labels.alpha,
        "bbox": labels.bbox,
        "dimensions": labels.dimensions[:, [2, 0, 1]],  # the port keeps l, h, w
        "location": labels.location,
        "rotation_y": labels.rotation_y,
        "score": labels.score if labels.score is not None else np.zeros(n),
    }


def run_port(cases: list, tmp_path: Path, float32: bool = False) -> list:
    src, dst = tmp_path / "cases.pkl", tmp_path / "out.pkl"
    with open(src, "wb") as f:
        pickle.dump(cases, f)
    python = os.environ.get("PC3D_KITTI_PORT_PYTHON", sys.executable)
    cmd = [python, str(Path(__file__).with_name("port_runner.py")), PORT_DIR, str(src), str(dst)]
    subprocess.run(cmd + (["--float32"] if float32 else []), check=True)
    with open(dst, "rb") as f:
        return pickle.load(f)


def compare(results: list, port: list) -> int:
    """Every AP of pc3d equals the port's to 1e-4; returns how many values were compared."""
    count = 0
    for ours, theirs in zip(results, port, strict=True):
        # the port returns AP11 bbox, bev, 3d, aos, then AP40 ..., each [class, difficulty, set]
        for k, value in enumerate(theirs):
            mine = (ours.ap11 if k < 4 else ours.ap40)[:, :, k % 4, :]
            if value is None:
                assert not ours.aos_computed and k % 4 == 3
                continue
            value = np.transpose(value, (0, 2, 1))
            np.testing.assert_allclose(mine, value, atol=1e-4, rtol=0)  # NaN equals NaN
            count += value.size
    return count


def random_cases(count: int, jitter: bool) -> tuple[list, list]:
    cases, results = [], []
    seed = 0
    while len(cases) < count:
        rng = np.random.default_rng(1000 + seed)
        seed += 1
        gts, dets = random_frames(
            rng, int(rng.integers(2, 30)), max_gt=10, alpha=seed % 5 != 0, tie_scores=seed % 3 == 0
        )
        if seed % 7 == 0:
            dets = perfect_detections(gts, rng)
        if jitter:  # keep clear of the port's float32 failure on identical rotated boxes
            dets = [
                replace(
                    d,
                    location=d.location + rng.normal(0, 0.01, d.location.shape),
                    rotation_y=d.rotation_y + rng.normal(0, 0.01, len(d)),
                )
                for d in dets
            ]
        if len(gts[0]) == 0:  # MMDetection3D's wrapper reads the first frame's first alpha
            continue
        classes = ["Car", "Pedestrian", "Cyclist"]
        result = kitti_eval(gts, dets, classes)
        cases.append(
            (
                [as_port_annotation(g) for g in gts],
                [as_port_annotation(d) for d in dets],
                classes,
                result.aos_computed,
            )
        )
        results.append(result)
    return cases, results


def test_equals_the_port_with_exact_rotated_overlaps(tmp_path: Path) -> None:
    cases, results = random_cases(int(os.environ.get("PC3D_KITTI_PORT_CASES", "20")), False)
    assert compare(results, run_port(cases, tmp_path)) > 0


def test_equals_the_port_float32_kernel_on_non_degenerate_boxes(tmp_path: Path) -> None:
    cases, results = random_cases(3, True)
    assert compare(results, run_port(cases, tmp_path, float32=True)) > 0
