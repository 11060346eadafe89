"""pc3d's vectorised KITTI evaluation against `reference_port.py`, a literal loop-by-loop
re-implementation of the port, on random scenes that hit every branch of the protocol (see
`synth.py`): every AP11/AP40 value of every class, overlap set, metric and difficulty agrees to
1e-4 (NaN where the port divides 0 by 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pc3d.evaluation import kitti_eval

from .reference_port import reference_eval
from .synth import perfect_detections, random_frames


def flat(tree: dict, prefix: tuple = ()) -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def assert_same(ours: dict, ref: dict) -> int:
    a, b = flat(ours), flat(ref)
    assert a.keys() == b.keys()
    informative = 0
    for key, want in b.items():
        got = a[key]
        if want is None or (isinstance(want, float) and math.isnan(want)):
            assert got is None, key
            continue
        assert got == pytest.approx(want, abs=1e-4), key
        informative += 0 < want < 100
    return informative


@pytest.mark.parametrize("seed", range(24))
def test_matches_the_reference_on_random_scenes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gts, dets = random_frames(
        rng, int(rng.integers(1, 30)), max_gt=10, alpha=seed % 5 != 0, tie_scores=seed % 3 == 0
    )
    if seed % 8 == 7:
        dets = perfect_detections(gts, rng)
    classes = ("Car", "Pedestrian", "Cyclist") if seed % 4 else ("Car", "Van", "Person_sitting", "Truck")
    assert_same(kitti_eval(gts, dets, classes).to_dict(), reference_eval(gts, dets, classes))


def test_the_random_scenes_are_informative() -> None:
    rng = np.random.default_rng(1)
    gts, dets = random_frames(rng, 40, max_gt=10)
    assert assert_same(kitti_eval(gts, dets).to_dict(), reference_eval(gts, dets)) > 60
