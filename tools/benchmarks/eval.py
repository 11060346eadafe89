"""Evaluation benchmarks: the KITTI protocol on KITTI-val-sized synthetic labels.

`python tools/bench.py eval` times `pc3d.evaluation.kitti_eval` on 3,769 frames (the size of
KITTI val) with 20 detections per frame, and compares it with a straightforward implementation
that follows the port's loop structure in plain Python (`tests/evaluation/reference_port.py`, the
test suite's reference). The plain-Python peer needs minutes per hundred frames, so it is timed on
a 100-frame slice and reported both as measured and scaled linearly to 3,769 frames (its cost is
linear in the number of frames: every frame is visited once per class, difficulty, overlap
threshold and score threshold). Both run on one CPU thread.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import median_time, row, torch_threads

_ROOT = Path(__file__).resolve().parents[2]
KITTI_VAL_FRAMES = 3769
DETS_PER_FRAME = 20


def synthetic_kitti(num_frames: int, seed: int = 0) -> tuple[list, list]:
    """KITTI-like ground truth (about 8 objects and 2 DontCare regions per frame) and 20
    detections per frame: noisy copies of most objects, plus false positives."""
    from pc3d.evaluation.kitti_labels import KittiEvalLabels

    rng = np.random.default_rng(seed)
    sizes = {
        "Car": (1.5, 1.6, 3.9),
        "Pedestrian": (1.75, 0.65, 0.85),
        "Cyclist": (1.7, 0.6, 1.8),
        "Van": (2.2, 1.9, 5.0),
    }
    kinds = np.array(["Car", "Car", "Car", "Pedestrian", "Cyclist", "Van"])
    gts, dets = [], []
    for _ in range(num_frames):
        n = int(rng.integers(4, 13))
        names = rng.choice(kinds, n)
        hwl = np.array([sizes[k] for k in names]) * rng.uniform(0.9, 1.1, (n, 3))
        loc = np.c_[rng.uniform(-20, 20, n), rng.uniform(1.2, 2.0, n), rng.uniform(5, 70, n)]
        ry = rng.uniform(-np.pi, np.pi, n)
        top = rng.uniform(120, 220, n)
        height = 1200 / loc[:, 2] * hwl[:, 0] / 1.5
        left = rng.uniform(0, 1100, n)
        bbox = np.c_[left, top, left + height * rng.uniform(0.6, 2.0, n), top + height]
        trunc = rng.choice([0.0, 0.0, 0.1, 0.2, 0.4], n)
        occ = rng.choice([0, 0, 1, 2], n)
        alpha = rng.uniform(-np.pi, np.pi, n)
        dc = rng.uniform(0, 1000, (2, 1)) + np.array([[0, 150, 60, 190]])
        gts.append(
            KittiEvalLabels(
                name=np.r_[names, ["DontCare", "DontCare"]],
                truncated=np.r_[trunc, [-1, -1]],
                occluded=np.r_[occ, [-1, -1]],
                alpha=np.r_[alpha, [-10, -10]],
                bbox=np.r_[bbox, dc],
                dimensions=np.r_[hwl, -np.ones((2, 3))],
                location=np.r_[loc, -1000 * np.ones((2, 3))],
                rotation_y=np.r_[ry, [-10, -10]],
            )
        )
        hit = rng.random(n) < 0.85
        k = int(hit.sum())
        m = DETS_PER_FRAME - k
        fp_names = rng.choice(kinds[:5], m)
        fp_hwl = np.array([sizes[x] for x in fp_names])
        fp_loc = np.c_[rng.uniform(-20, 20, m), rng.uniform(1.2, 2.0, m), rng.uniform(5, 70, m)]
        fp_left, fp_top = rng.uniform(0, 1100, m), rng.uniform(120, 220, m)
        fp_h = rng.uniform(15, 120, m)
        dets.append(
            KittiEvalLabels(
                name=np.r_[names[hit], fp_names],
                truncated=np.zeros(DETS_PER_FRAME),
                occluded=np.zeros(DETS_PER_FRAME),
                alpha=np.r_[alpha[hit] + rng.normal(0, 0.2, k), rng.uniform(-np.pi, np.pi, m)],
                bbox=np.r_[
                    bbox[hit] + rng.normal(0, 3, (k, 4)),
                    np.c_[fp_left, fp_top, fp_left + fp_h, fp_top + fp_h],
                ],
                dimensions=np.r_[hwl[hit] * rng.normal(1, 0.05, (k, 3)), fp_hwl],
                location=np.r_[loc[hit] + rng.normal(0, 0.15, (k, 3)), fp_loc],
                rotation_y=np.r_[ry[hit] + rng.normal(0, 0.1, k), rng.uniform(-np.pi, np.pi, m)],
                score=np.r_[rng.beta(5, 2, k), rng.beta(2, 5, m)],
            )
        )
    return gts, dets


def run(device: str) -> list[dict]:
    from pc3d.evaluation import kitti_eval

    sys.path.insert(0, str(_ROOT / "tests"))
    from evaluation.reference_port import reference_eval  # the test suite's peer

    gts, dets = synthetic_kitti(KITTI_VAL_FRAMES)
    # One torch thread, like the single-threaded peer: the rotated IoU's intra-op threads only
    # add spin-waiting on a small, busy machine.
    with torch_threads(1):
        ours_full = median_time(lambda: kitti_eval(gts, dets), repeats=3)
        small = 100
        start = time.perf_counter()
        reference_eval(gts[:small], dets[:small])
        peer_small = time.perf_counter() - start
        ours_small = median_time(lambda: kitti_eval(gts[:small], dets[:small]), repeats=3)
    size = f"{DETS_PER_FRAME} dets/frame, 3 classes"
    return [
        row(
            "kitti_eval (AP11+AP40, bbox/bev/3d/aos)",
            f"{small} frames, {size}",
            ours_small,
            "port loops in plain Python",
            peer_small,
        ),
        row(
            "kitti_eval (AP11+AP40, bbox/bev/3d/aos)",
            f"{KITTI_VAL_FRAMES} frames, {size}",
            ours_full,
            "same, scaled linearly from 100 frames",
            peer_small * KITTI_VAL_FRAMES / small,
        ),
    ]
