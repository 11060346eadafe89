"""VOC-style 3D mAP: cases worked by hand, every coordinate system, and agreement with a
straightforward loop implementation of MMDetection3D's ``eval_det_cls``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.map3d import Map3DMetric, map3d, voc_ap
from pc3d.ops import box_iou_3d
from pc3d.structures import CameraBoxes3D, DepthBoxes3D, LiDARBoxes3D


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 7)


def hand_scene() -> tuple:
    # unit cubes (x, y, z bottom centre, sizes, yaw); class 0 at x=0 and x=10, class 1 at x=20
    gt = t([[0, 0, 0, 1, 1, 1, 0], [10, 0, 0, 1, 1, 1, 0], [20, 0, 0, 1, 1, 1, 0]])
    gt_labels = torch.tensor([0, 0, 1])
    det = t(
        [
            [0, 0, 0, 1, 1, 1, 0],  # exact on gt 0, score 0.9
            [10.5, 0, 0, 1, 1, 1, 0],  # half a box off gt 1: IoU 0.5 / 1.5 = 1/3
            [0, 0, 0, 1, 1, 1, 0],  # duplicate of gt 0
            [50, 0, 0, 1, 1, 1, 0],  # far from everything
            [30, 0, 0, 1, 1, 1, 0],
        ]
    )  # class 2, which has no ground truth
    det_labels = torch.tensor([0, 0, 0, 0, 2])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    return gt, gt_labels, det, det_labels, scores


def test_hand_worked_scene() -> None:
    gt, gl, det, dl, sc = hand_scene()
    result = map3d([gt], [gl], [det], [dl], [sc], class_names=None)
    d = result.to_dict()
    # class 0 at 0.25: TP, TP, FP(dup), FP -> recall .5, 1, 1, 1; precision 1, 1, 2/3, 1/2 -> AP 1
    # class 0 at 0.50: TP, FP(1/3), FP, FP -> recall .5 then flat: AP = 0.5 * 1
    assert d["0_AP_0.25"] == pytest.approx(1.0)
    assert d["0_AP_0.50"] == pytest.approx(0.5)
    assert d["0_rec_0.25"] == 1.0 and d["0_rec_0.50"] == 0.5
    assert d["1_AP_0.25"] == 0.0 and d["1_rec_0.25"] == 0.0  # ground truth, no detection
    assert math.isnan(d["2_AP_0.25"])  # detections, no ground truth: left out of the mean
    assert d["mAP_0.25"] == pytest.approx(0.5) and d["mAP_0.50"] == pytest.approx(0.25)
    assert d["mAR_0.25"] == pytest.approx(0.5) and d["mAR_0.50"] == pytest.approx(0.25)
    assert "Overall" in result.table()


def test_iou_must_be_strictly_above_the_threshold() -> None:
    gt = t([[0, 0, 0, 3, 1, 1, 0]])
    det = t([[1, 0, 0, 3, 1, 1, 0]])  # overlap 2 of union 4: IoU exactly 0.5
    assert float(box_iou_3d(det, gt)[0, 0]) == 0.5
    result = map3d(
        [gt],
        [torch.tensor([0])],
        [det],
        [torch.tensor([0])],
        [torch.tensor([0.9])],
        iou_thresholds=(0.25, 0.5),
    )
    assert result.ap[:, 0].tolist() == [1.0, 0.0]


def test_every_coordinate_system_gives_the_same_numbers() -> None:
    gt, gl, det, dl, sc = hand_scene()
    gt[:, 6] = torch.tensor([0.3, -1.2, 2.0])
    det[:, 6] = torch.tensor([0.3, -1.1, 0.3, 0.0, 0.0])
    base = map3d([gt], [gl], [det], [dl], [sc]).ap
    assert base[0, 0] == pytest.approx(1.0)
    for kind in (LiDARBoxes3D, DepthBoxes3D):
        got = map3d([kind(gt.float())], [gl], [kind(det.float())], [dl], [sc]).ap
        np.testing.assert_allclose(got, base, atol=1e-6)
    cam_gt, cam_det = (
        LiDARBoxes3D(gt.float()).convert_to("camera"),
        LiDARBoxes3D(det.float()).convert_to("camera"),
    )
    assert isinstance(cam_gt, CameraBoxes3D)
    got = map3d([cam_gt], [gl], [cam_det], [dl], [sc]).ap
    np.testing.assert_allclose(got, base, atol=1e-6)


def test_voc_area_by_hand() -> None:
    # recall .5 -> 1 at precisions 1, 2/3: area .5 * 1 + .5 * 2/3
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


def loop_eval_det_cls(scenes: list, cls: int, thr: float) -> tuple[float, float]:
    """MMDetection3D's eval_det_cls, as a plain loop, for one class and threshold."""
    npos = sum(int((s[1] == cls).sum()) for s in scenes)
    dets = []
    for i, (_gt, _gl, _det, dl, sc) in enumerate(scenes):
        for j in range(len(dl)):
            if dl[j] == cls:
                dets.append((float(sc[j]), i, j))
    dets.sort(key=lambda x: -x[0])  # stable: scene, then detection order among ties
    taken = set()
    tp, fp = [], []
    for _, i, j in dets:
        gt, gl, det, dl, sc = scenes[i]
        idx = [k for k in range(len(gl)) if gl[k] == cls]
        best, jmax = -math.inf, None
        if idx:
            ious = box_iou_3d(det[j : j + 1], gt[idx])[0]
            for k, value in zip(idx, ious.tolist()):
                if value > best:
                    best, jmax = value, k
        hit = best > thr and (i, jmax) not in taken
        if hit:
            taken.add((i, jmax))
        tp.append(float(hit))
        fp.append(float(not hit))
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for k in range(len(mpre) - 1, 0, -1):
        mpre[k - 1] = max(mpre[k - 1], mpre[k])
    ind = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1])), float(rec[-1]) if len(rec) else 0.0


def test_matches_a_loop_implementation_on_random_scenes() -> None:
    rng = np.random.default_rng(0)
    scenes = []
    for _ in range(12):
        n = int(rng.integers(0, 8))
        gt = np.c_[rng.uniform(-4, 4, (n, 3)), rng.uniform(0.5, 2.0, (n, 3)), rng.uniform(-3, 3, n)]
        gl = rng.integers(0, 3, n)
        keep = rng.random(n) < 0.8
        det = (
            gt[keep]
            + np.c_[
                rng.normal(0, 0.2, (keep.sum(), 3)),
                rng.normal(0, 0.1, (keep.sum(), 3)),
                rng.normal(0, 0.2, keep.sum()),
            ]
        )
        det[:, 3:6] = np.abs(det[:, 3:6])
        extra = int(rng.integers(0, 4))
        det = np.r_[
            det,
            np.c_[rng.uniform(-4, 4, (extra, 3)), rng.uniform(0.5, 2, (extra, 3)), rng.uniform(-3, 3, extra)],
        ]
        dl = np.r_[gl[keep], rng.integers(0, 3, extra)]
        sc = np.round(rng.random(len(dl)), 1)  # ties on purpose
        scenes.append(
            (torch.tensor(gt), torch.tensor(gl), torch.tensor(det), torch.tensor(dl), torch.tensor(sc))
        )
    result = map3d(*[[s[k] for s in scenes] for k in range(5)], classes=[0, 1, 2])
    informative = 0
    for ti, thr in enumerate((0.25, 0.5)):
        for cls in range(3):
            ap, rec = loop_eval_det_cls(scenes, cls, thr)
            assert result.ap[ti, cls] == pytest.approx(ap, abs=1e-12)
            assert result.recall[ti, cls] == pytest.approx(rec, abs=1e-12)
            informative += 0 < ap < 1
    assert informative >= 3


def test_metric_accumulates_and_merges_like_one_pass() -> None:
    gt, gl, det, dl, sc = hand_scene()
    pred = {"boxes": det, "labels": dl, "scores": sc}
    batch = {"gt_boxes": [gt, gt[:1]], "gt_labels": [gl, gl[:1]]}
    whole = Map3DMetric(class_names=["a", "b", "c"])
    whole.update([pred, pred], batch)
    ranks = [Map3DMetric(class_names=["a", "b", "c"]) for _ in range(2)]
    ranks[0].update([pred], {"gt_boxes": [gt], "gt_labels": [gl]})
    ranks[1].update([pred], {"gt_boxes": [gt[:1]], "gt_labels": [gl[:1]]})
    ranks[0].merge([r.state() for r in ranks])
    a, b = whole.compute(), ranks[0].compute()
    assert a.keys() == b.keys() and "a_AP_0.25" in a and "mAP_0.50" in a
    assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
    whole.reset()
    assert whole.state() == []


def test_bad_input() -> None:
    gt, gl, det, dl, sc = hand_scene()
    with pytest.raises(ShapeError, match="5 detection boxes but 4 labels"):
        map3d([gt], [gl], [det], [dl[:4]], [sc])
    with pytest.raises(ShapeError, match="one entry per scene"):
        map3d([gt], [gl], [det, det], [dl], [sc])
    with pytest.raises(FormatError, match="NaN"):
        map3d([gt], [gl], [det], [dl], [torch.full((5,), float("nan"))])
    with pytest.raises(FormatError, match="has no 'scores'"):
        Map3DMetric().update([{"boxes": det, "labels": dl}], {"gt_boxes": [gt], "gt_labels": [gl]})
    with pytest.raises(FormatError, match="the batch has no 'gt_boxes'"):
        Map3DMetric().update([], {})
