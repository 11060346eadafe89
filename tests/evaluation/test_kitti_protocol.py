"""The KITTI protocol on cases worked by hand, and its properties.

With n valid ground-truth boxes and TP scores s_1 > s_2 > .. the devkit keeps a threshold at
(about) every 1/40 step of recall; precision at threshold k is TP_k / (TP_k + FP_k), made
monotone; AP11 sums the precision at thresholds 0, 4, .., 40 and divides by 11, AP40 sums 1..40
and divides by 40. So 41 perfect detections give 100, while 40 give only thresholds 0..39:
AP11 = 10/11 and AP40 = 39/40.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation import kitti_eval
from pc3d.evaluation.kitti_labels import KittiEvalLabels

from .reference_port import reference_eval
from .synth import labels, obj, perfect_detections, random_frames, row_grid

CLASSES = ("Car", "Pedestrian", "Cyclist")


def detect(rows: list[dict], scores: list[float] | None = None) -> list[dict]:
    out = copy.deepcopy(rows)
    for i, r in enumerate(out):
        r["score"] = scores[i] if scores is not None else 0.3 + 0.6 * i / max(len(rows), 1)
    return out


def ap(
    result, cls: str = "Car", oset: str = "strict", metric: str = "bbox", diff: str = "moderate"
) -> tuple[float, float]:
    d = result.to_dict()[cls][oset][metric][diff]
    return d["AP11"], d["AP40"]


def all_aps(result, cls: str = "Car") -> list[float]:
    d = result.to_dict()[cls]
    return [v for s in d.values() for m in s.values() for x in m.values() for v in x.values()]


def test_perfect_detections_score_100_in_every_metric_including_rotated_boxes() -> None:
    # Identical rotated boxes (yaw 0, +-pi/2, pi, ...) are where the port's float32 rotated IoU
    # returns 0 or 1/3 instead of 1; with exact geometry every metric is 100.
    gt_rows = (
        row_grid(45, "Car")
        + row_grid(45, "Pedestrian", dims=(1.7, 0.6, 0.8))
        + row_grid(45, "Cyclist", dims=(1.7, 0.6, 1.8))
    )
    for i, r in enumerate(gt_rows):  # spread the classes over three frames
        r["loc"][2] += 200 * (i // 45)
    frames = [gt_rows[:45], gt_rows[45:90], gt_rows[90:]]
    gts = [labels(f) for f in frames]
    dets = [labels(detect(f), detections=True) for f in frames]
    result = kitti_eval(gts, dets)
    for cls in CLASSES:
        assert all_aps(result, cls) == pytest.approx([100.0] * 48)


def test_perfect_detections_of_random_scenes_score_100() -> None:
    # Not crowded: where boxes of one class overlap each other above the threshold, the
    # devkit's score pass may hand a box's detection to its neighbour and lose a TP.
    rng = np.random.default_rng(7)
    gts, _ = random_frames(rng, 300, max_gt=10, crowded=False)
    result = kitti_eval(gts, perfect_detections(gts, rng))
    # every class/difficulty with at least 41 valid boxes: 100 exactly
    counts = {}
    for g in gts:
        for d, (h, occ, tr) in enumerate([(40, 0, 0.15), (25, 1, 0.3), (25, 2, 0.5)]):
            height = g.bbox[:, 3] - g.bbox[:, 1]
            ok = (height > h) & (g.occluded <= occ) & (g.truncated <= tr)
            for c in CLASSES:
                counts[c, d] = counts.get((c, d), 0) + int((ok & (g.name == c)).sum())
    checked = 0
    for (cls, d), n in counts.items():
        if n >= 41:
            for metric in ("bbox", "bev", "3d", "aos"):
                for oset in ("strict", "loose"):
                    diff = ("easy", "moderate", "hard")[d]
                    assert ap(result, cls, oset, metric, diff) == pytest.approx((100.0, 100.0))
                    checked += 1
    assert checked >= 32  # at least four class/difficulty pairs with enough boxes


@pytest.mark.parametrize(
    ("n_gt", "n_det", "expected"),
    [
        (41, 41, (100.0, 100.0)),
        (40, 40, (1000 / 11, 97.5)),  # thresholds 0..39 only
        (41, 30, (800 / 11, 72.5)),  # 30 of 41 found: thresholds 0..29
        (2, 2, (100 / 11, 2.5)),  # two boxes: thresholds 0 and 1
    ],
)
def test_recall_sampling_worked_by_hand(n_gt: int, n_det: int, expected: tuple) -> None:
    rows = row_grid(n_gt)
    result = kitti_eval([labels(rows)], [labels(detect(rows[:n_det]), detections=True)])
    for metric in ("bbox", "bev", "3d", "aos"):
        assert ap(result, metric=metric) == pytest.approx(expected)


def test_duplicates_count_as_false_positives() -> None:
    rows = row_grid(41)
    dets = detect(rows, [0.5 + i / 100 for i in range(41)])
    dup = copy.deepcopy(dets[40])
    dup["score"] = 0.95
    result = kitti_eval([labels(rows)], [labels(dets + [dup], detections=True)])
    # The duplicate takes the TP at the top threshold (highest score); below 0.90 one of the
    # two identical boxes is a FP: precision 1 then (k+1)/(k+2), monotone -> 41/42.
    expected = ((1 + 10 * 41 / 42) / 11 * 100, 41 / 42 * 100)
    for metric in ("bbox", "bev", "3d"):
        assert ap(result, metric=metric) == pytest.approx(expected)
    # small case: two boxes, a duplicate of the first scoring between them
    rows = row_grid(2)
    dets = detect(rows, [0.9, 0.7])
    dup = copy.deepcopy(dets[0])
    dup["score"] = 0.8
    result = kitti_eval([labels(rows)], [labels(dets + [dup], detections=True)])
    assert ap(result) == pytest.approx((100 / 11, 100 / 40 * 2 / 3))


def test_dontcare_regions_suppress_false_positives_in_2d_only() -> None:
    rows = row_grid(41)
    dc = obj(
        "DontCare",
        bbox=(10.0, 500.0, 300.0, 600.0),
        loc=(-1000, -1000, -1000),
        dims=(-1, -1, -1),
        ry=-10,
        truncated=-1,
        occluded=-1,
        alpha=-10,
    )
    fp = obj("Car", bbox=(20.0, 510.0, 200.0, 590.0), loc=(30.0, 1.6, 80.0), score=0.99)
    result = kitti_eval([labels(rows + [dc])], [labels(detect(rows) + [fp], detections=True)])
    assert ap(result, metric="bbox") == pytest.approx((100.0, 100.0))
    for metric in ("bev", "3d"):  # one FP above every threshold: precision (k+1)/(k+2) -> 41/42
        assert ap(result, metric=metric) == pytest.approx((100 * 41 / 42, 100 * 41 / 42))
    # outside the DontCare box the same detection is a false positive in 2D too
    fp["bbox"] = [400.0, 510.0, 580.0, 590.0]
    result = kitti_eval([labels(rows + [dc])], [labels(detect(rows) + [fp], detections=True)])
    assert ap(result, metric="bbox") == pytest.approx((100 * 41 / 42, 100 * 41 / 42))


@pytest.mark.parametrize(
    ("cls", "neighbour", "dims"),
    [("Car", "Van", (1.5, 1.6, 3.9)), ("Pedestrian", "Person_sitting", (1.7, 0.6, 0.8))],
)
def test_neighbouring_class_is_neither_rewarded_nor_penalised(cls: str, neighbour: str, dims: tuple) -> None:
    rows = row_grid(41, cls, dims=dims)
    other = obj(neighbour, bbox=(10.0, 500.0, 110.0, 560.0), loc=(30.0, 1.6, 80.0), dims=dims)
    det_other = dict(copy.deepcopy(other), name=cls, score=0.99)
    dets = labels(detect(rows) + [det_other], detections=True)
    with_neighbour = kitti_eval([labels(rows + [other])], [dets], classes=[cls])
    assert all_aps(with_neighbour, cls) == pytest.approx([100.0] * 48)
    without = kitti_eval([labels(rows)], [dets], classes=[cls])
    assert ap(without, cls) == pytest.approx((100 * 41 / 42, 100 * 41 / 42))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # (easy, moderate, hard) AP40 of 41 perfect detections
        ({"height": 40.0}, (0, 100, 100)),  # easy needs height > 40
        ({"height": 40.01}, (100, 100, 100)),
        ({"height": 25.0}, (0, 0, 0)),  # moderate/hard need > 25
        ({"height": 26.0}, (0, 100, 100)),
        ({"occluded": 1}, (0, 100, 100)),
        ({"occluded": 2}, (0, 0, 100)),
        ({"occluded": 3}, (0, 0, 0)),
        ({"truncated": 0.15}, (100, 100, 100)),  # at most 0.15 / 0.3 / 0.5
        ({"truncated": 0.16}, (0, 100, 100)),
        ({"truncated": 0.3}, (0, 100, 100)),
        ({"truncated": 0.31}, (0, 0, 100)),
        ({"truncated": 0.5}, (0, 0, 100)),
        ({"truncated": 0.51}, (0, 0, 0)),
    ],
)
def test_difficulty_boundaries(change: dict, expected: tuple) -> None:
    height = change.pop("height", 60.0)
    rows = row_grid(41, height=height, **change)
    result = kitti_eval([labels(rows)], [labels(detect(rows), detections=True)])
    got = tuple(ap(result, diff=d)[1] for d in ("easy", "moderate", "hard"))
    assert got == pytest.approx(expected)


def test_small_detections_are_ignored_not_false() -> None:
    rows = row_grid(41)  # 60 px high
    dets = detect(rows)
    for d in dets:
        d["bbox"][3] = d["bbox"][1] + 39.99  # below easy's 40 px; the 3D box is exact
    result = kitti_eval([labels(rows)], [labels(dets, detections=True)])
    # easy: every ground truth is matched to an ignored detection: no TP, no FP, no FN
    assert ap(result, metric="bev", diff="easy") == (0.0, 0.0)
    assert ap(result, metric="bev", diff="moderate") == pytest.approx((100.0, 100.0))


def test_orientation_similarity() -> None:
    rows = row_grid(41)
    dets = detect(rows)
    result = kitti_eval([labels(rows)], [labels(dets, detections=True)])
    assert ap(result, metric="aos") == pytest.approx((100.0, 100.0))
    for d in dets:
        d["alpha"] = math.pi / 2  # (1 + cos(pi/2)) / 2 = 0.5 for gt alpha 0
    result = kitti_eval([labels(rows)], [labels(dets, detections=True)])
    assert ap(result, metric="aos") == pytest.approx((50.0, 50.0))
    assert ap(result, metric="bbox") == pytest.approx((100.0, 100.0))
    for d in dets:
        d["alpha"] = -10.0  # the devkit's "no angle": AOS is not computed
    result = kitti_eval([labels(rows)], [labels(dets, detections=True)])
    assert not result.aos_computed
    assert ap(result, metric="aos") == (None, None)
    assert "aos" not in result.table()


def test_empty_inputs() -> None:
    rows = row_grid(5)
    empty_gt, empty_det = KittiEvalLabels.empty(), KittiEvalLabels.empty(detections=True)
    for gts, dets in [
        ([], []),
        ([empty_gt] * 3, [empty_det] * 3),
        ([empty_gt], [labels(detect(rows), detections=True)]),
        ([labels(rows)], [empty_det]),
    ]:
        result = kitti_eval(gts, dets)
        for cls in CLASSES:
            assert all(v in (0.0, None) for v in all_aps(result, cls))
    # an empty frame among others changes nothing
    full = row_grid(41)
    base = kitti_eval([labels(full)], [labels(detect(full), detections=True)])
    more = kitti_eval(
        [empty_gt, labels(full), empty_gt], [empty_det, labels(detect(full), detections=True), empty_det]
    )
    assert all_aps(base) == all_aps(more)


def test_nan_where_the_port_divides_zero_by_zero() -> None:
    # Van V, then Car C; d1 (score 0.9) overlaps V by 0.905 and C by 0.667 in BEV; d2 is V's
    # exact box but 20 px high (an ignored detection) with score 0.95. Loose BEV (0.5): the
    # first pass gives V the higher-scored d2 and C the TP d1 (threshold 0.9); the second pass
    # gives V the larger-overlap d1 and C the ignored d2: no TP and no FP at the only threshold,
    # so precision is 0/0 = NaN in the port, and so here.
    van = obj("Van", bbox=(100, 100, 200, 160), loc=(2.0, 1.6, 21.0), dims=(1.5, 2.0, 4.0))
    car = obj("Car", bbox=(500, 100, 600, 160), loc=(3.0, 1.6, 21.0), dims=(1.5, 2.0, 4.0))
    d1 = obj("Car", bbox=(800, 100, 900, 160), loc=(2.2, 1.6, 21.0), dims=(1.5, 2.0, 4.0), score=0.9)
    d2 = dict(copy.deepcopy(van), name="Car", bbox=[100, 100, 200, 120], score=0.95)
    gts, dets = [labels([van, car])], [labels([d1, d2], detections=True)]
    result = kitti_eval(gts, dets, classes=["Car"])
    for metric in ("bev", "3d"):
        # one threshold: AP11 reads it (NaN, reported as None), AP40 starts after it
        assert ap(result, "Car", "loose", metric) == (None, 0.0)
        assert math.isnan(result.ap11[0, 1, ("bbox", "bev", "3d").index(metric), 1])
        assert ap(result, "Car", "strict", metric) == (0.0, 0.0)
    ref = reference_eval(gts, dets, classes=["Car"])
    assert ref["Car"]["loose"]["bev"]["moderate"]["AP11"] != ref["Car"]["loose"]["bev"]["moderate"]["AP11"]


def test_a_false_positive_never_raises_ap() -> None:
    cost = 0.0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        gts, dets = random_frames(rng, 25, max_gt=10)
        before = kitti_eval(gts, dets)
        f = int(rng.integers(len(dets)))
        d = dets[f]
        fp = {"name": str(rng.choice(list(CLASSES))), "score": float(rng.uniform(0.3, 1.0))}
        # far from everything in 3D and below the image in 2D: a candidate for nothing
        extra = labels(
            [
                obj(
                    fp["name"],
                    bbox=(0, 2000, 100, 2000 + rng.uniform(30, 90)),
                    loc=(500.0, 1.5, 500.0),
                    score=fp["score"],
                )
            ],
            detections=True,
        )
        merged = KittiEvalLabels(
            **{
                k: np.concatenate([getattr(d, k), getattr(extra, k)])
                for k in (
                    "name",
                    "truncated",
                    "occluded",
                    "alpha",
                    "bbox",
                    "dimensions",
                    "location",
                    "rotation_y",
                    "score",
                )
            }
        )
        after = kitti_eval(gts, dets[:f] + [merged] + dets[f + 1 :])
        for old, new in zip(
            before.ap11.ravel().tolist() + before.ap40.ravel().tolist(),
            after.ap11.ravel().tolist() + after.ap40.ravel().tolist(),
        ):
            if not (math.isnan(old) or math.isnan(new)):
                assert new <= old + 1e-9
                cost += old - new
    assert cost > 1.0  # it did cost something somewhere


def test_bad_arguments() -> None:
    rows = row_grid(2)
    gt, det = labels(rows), labels(detect(rows), detections=True)
    with pytest.raises(ShapeError, match="1 ground-truth frames but 2 detection frames"):
        kitti_eval([gt], [det, det])
    with pytest.raises(FormatError, match="detections need a score"):
        kitti_eval([gt], [gt])
    with pytest.raises(FormatError, match="must not carry scores"):
        kitti_eval([det], [det])
    with pytest.raises(FormatError, match="cannot evaluate class 'Tram'"):
        kitti_eval([gt], [det], classes=["Tram"])


def test_result_layout_and_table() -> None:
    rows = row_grid(41)
    result = kitti_eval([labels(rows)], [labels(detect(rows), detections=True)], classes=["car", "Van"])
    d = result.to_dict()
    assert list(d) == ["Car", "Van"]
    assert list(d["Car"]) == ["strict", "loose"]
    assert list(d["Car"]["loose"]) == ["bbox", "bev", "3d", "aos"]
    assert list(d["Car"]["loose"]["bev"]) == ["easy", "moderate", "hard"]
    assert d["Car"]["loose"]["bev"]["hard"] == {"AP11": 100.0, "AP40": 100.0}
    assert d["Van"]["strict"]["3d"]["easy"] == {"AP11": 0.0, "AP40": 0.0}
    table = result.table()
    assert "Car AP11@0.70, 0.50, 0.50 (loose):" in table
    assert "bev  AP40:100.0000, 100.0000, 100.0000" in table
    assert "aos  AP11:100.00, 100.00, 100.00" in table
    np.testing.assert_allclose(result.min_overlaps[0], [[0.7, 0.7, 0.7], [0.7, 0.5, 0.5]])


def test_engine_metric_gathers_frames_across_ranks() -> None:
    from pc3d.evaluation import KittiMetric

    rows = row_grid(41)
    gt, det = labels(rows), labels(detect(rows), detections=True)
    half_gt, half_det = labels(rows[:20]), labels(detect(rows[:20]), detections=True)
    ranks = [KittiMetric(classes=["Car"]), KittiMetric(classes=["Car"])]
    ranks[0].update([det], {"kitti_labels": [gt]})
    ranks[1].update([half_det], {"kitti_labels": [half_gt]})
    merged = KittiMetric(classes=["Car"])
    merged.merge([r.state() for r in ranks])
    direct = kitti_eval([gt, half_gt], [det, half_det], ["Car"])
    out = merged.compute()
    assert (
        out["KITTI/Car_3D_AP40_moderate_strict"]
        == direct.to_dict()["Car"]["strict"]["3d"]["moderate"]["AP40"]
    )
    assert out["KITTI/Car_AOS_AP11_hard_loose"] == pytest.approx(100.0)
    assert len(out) == 4 * 2 * 2 * 3
    with pytest.raises(FormatError, match="the batch has no 'kitti_labels'"):
        merged.update([det], {})


def test_results_do_not_depend_on_how_pairs_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    import pc3d.evaluation.kitti_overlaps as kitti_overlaps

    gts, dets = random_frames(np.random.default_rng(5), 30, max_gt=10)
    whole = kitti_eval(gts, dets)
    monkeypatch.setattr(kitti_overlaps, "_PAIRS_PER_CHUNK", 7)
    chunked = kitti_eval(gts, dets)
    assert np.array_equal(whole.precision, chunked.precision, equal_nan=True)
