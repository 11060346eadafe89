"""A literal, loop-based re-implementation of the KITTI protocol as ``kitti_object_eval_python``
computes it (the Python port of the devkit that OpenPCDet and MMDetection3D ship).

Written for the tests only, independently of ``pc3d.evaluation.kitti``: it follows the port's
structure step by step (per frame, per ground-truth box, per detection, per threshold) in plain
Python, so that the vectorised implementation can be compared with it on many random inputs. The
one difference from the port is the one pc3d makes on purpose: rotated overlaps use exact
float64 polygon geometry (shapely) instead of the port's float32 kernel.

It is slow (pure Python); use it on small inputs.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

CLASS_NAMES = ["car", "pedestrian", "cyclist", "van", "person_sitting", "truck"]
# The port's per-class IoU thresholds as the port writes them (overlap_0_7 and overlap_0_5): one row
# per metric (bbox, bev, 3d), one column per class of CLASS_NAMES. Written out again on purpose,
# independent of pc3d.evaluation.kitti_protocol.
STRICT = [
    [0.7, 0.5, 0.5, 0.7, 0.5, 0.7],
    [0.7, 0.5, 0.5, 0.7, 0.5, 0.7],
    [0.7, 0.5, 0.5, 0.7, 0.5, 0.7],
]
LOOSE = [
    [0.7, 0.5, 0.5, 0.7, 0.5, 0.5],
    [0.5, 0.25, 0.25, 0.5, 0.25, 0.5],
    [0.5, 0.25, 0.25, 0.5, 0.25, 0.5],
]


def to_anno(labels) -> dict:
    """A pc3d KittiEvalLabels record as the port's annotation dict (dimensions as l, h, w)."""
    return {
        "name": [str(n) for n in labels.name],
        "truncated": [float(v) for v in labels.truncated],
        "occluded": [int(v) for v in labels.occluded],
        "alpha": [float(v) for v in labels.alpha],
        "bbox": [[float(v) for v in row] for row in labels.bbox],
        # label files hold h, w, l; the port reorders to l, h, w
        "dimensions": [[float(r[2]), float(r[0]), float(r[1])] for r in labels.dimensions],
        "location": [[float(v) for v in row] for row in labels.location],
        "rotation_y": [float(v) for v in labels.rotation_y],
        "score": [float(v) for v in labels.score] if labels.score is not None else [0.0] * len(labels.name),
    }


def clean_data(gt, dt, cls, difficulty):
    min_height = [40, 25, 25]
    max_occlusion = [0, 1, 2]
    max_truncation = [0.15, 0.3, 0.5]
    dc_bboxes, ignored_gt, ignored_dt = [], [], []
    num_valid_gt = 0
    for i in range(len(gt["name"])):
        bbox = gt["bbox"][i]
        gt_name = gt["name"][i].lower()
        height = bbox[3] - bbox[1]
        if gt_name == cls:
            valid_class = 1
        elif cls == "pedestrian" and gt_name == "person_sitting":
            valid_class = 0
        elif cls == "car" and gt_name == "van":
            valid_class = 0
        else:
            valid_class = -1
        ignore = (
            gt["occluded"][i] > max_occlusion[difficulty]
            or gt["truncated"][i] > max_truncation[difficulty]
            or height <= min_height[difficulty]
        )
        if valid_class == 1 and not ignore:
            ignored_gt.append(0)
            num_valid_gt += 1
        elif valid_class == 0 or (ignore and valid_class == 1):
            ignored_gt.append(1)
        else:
            ignored_gt.append(-1)
        if gt["name"][i] == "DontCare":
            dc_bboxes.append(gt["bbox"][i])
    for i in range(len(dt["name"])):
        valid_class = 1 if dt["name"][i].lower() == cls else -1
        height = abs(dt["bbox"][i][3] - dt["bbox"][i][1])
        if height < min_height[difficulty]:
            ignored_dt.append(1)
        elif valid_class == 1:
            ignored_dt.append(0)
        else:
            ignored_dt.append(-1)
    return num_valid_gt, ignored_gt, ignored_dt, dc_bboxes


def image_overlap(box, qbox, criterion=-1):
    iw = min(box[2], qbox[2]) - max(box[0], qbox[0])
    if iw > 0:
        ih = min(box[3], qbox[3]) - max(box[1], qbox[1])
        if ih > 0:
            if criterion == -1:
                ua = (
                    (box[2] - box[0]) * (box[3] - box[1])
                    + (qbox[2] - qbox[0]) * (qbox[3] - qbox[1])
                    - iw * ih
                )
            else:
                ua = (box[2] - box[0]) * (box[3] - box[1])
            return iw * ih / ua
    return 0.0


def _footprint(x, z, length, width, ry):
    # The port's corner layout: length along (cos ry, -sin ry) in the camera x-z plane.
    c, s = math.cos(ry), math.sin(ry)
    pts = []
    for cx, cy in (
        (-length / 2, -width / 2),
        (-length / 2, width / 2),
        (length / 2, width / 2),
        (length / 2, -width / 2),
    ):
        pts.append((c * cx + s * cy + x, -s * cx + c * cy + z))
    return shapely.Polygon(pts)


def bev_intersection(a, b):
    """a, b: (x, z, l, w, ry)."""
    return _footprint(*a).intersection(_footprint(*b)).area


def pair_overlap(dt, i, gt, j, metric):
    if metric == 0:
        return image_overlap(dt["bbox"][i], gt["bbox"][j])
    dl, dh, dw = dt["dimensions"][i]
    gl, gh, gw = gt["dimensions"][j]
    dx, dy, dz = dt["location"][i]
    gx, gy, gz = gt["location"][j]
    inter = bev_intersection((dx, dz, dl, dw, dt["rotation_y"][i]), (gx, gz, gl, gw, gt["rotation_y"][j]))
    if metric == 1:
        union = dl * dw + gl * gw - inter
        return inter / union if inter > 0 else 0.0
    if inter <= 0:
        return 0.0
    iw = min(dy, gy) - max(dy - dh, gy - gh)  # camera y points down: the box spans y-h .. y
    if iw <= 0:
        return 0.0
    inc = iw * inter
    return inc / (dl * dh * dw + gl * gh * gw - inc)


def compute_statistics(
    overlaps,
    gt,
    dt,
    ignored_gt,
    ignored_det,
    dc_bboxes,
    metric,
    min_overlap,
    thresh=0.0,
    compute_fp=False,
    compute_aos=False,
):
    det_size, gt_size = len(dt["name"]), len(gt["name"])
    scores = dt["score"]
    assigned = [False] * det_size
    below = [compute_fp and scores[i] < thresh for i in range(det_size)]
    no_detection = -10000000
    tp = fp = fn = 0
    thresholds, delta = [], []
    for i in range(gt_size):
        if ignored_gt[i] == -1:
            continue
        det_idx = -1
        valid_detection = no_detection
        max_overlap = 0
        assigned_ignored_det = False
        for j in range(det_size):
            if ignored_det[j] == -1 or assigned[j] or below[j]:
                continue
            overlap = overlaps[j][i]
            if not compute_fp and overlap > min_overlap and scores[j] > valid_detection:
                det_idx, valid_detection = j, scores[j]
            elif (
                compute_fp
                and overlap > min_overlap
                and (overlap > max_overlap or assigned_ignored_det)
                and ignored_det[j] == 0
            ):
                max_overlap, det_idx, valid_detection = overlap, j, 1
                assigned_ignored_det = False
            elif (
                compute_fp
                and overlap > min_overlap
                and valid_detection == no_detection
                and ignored_det[j] == 1
            ):
                det_idx, valid_detection = j, 1
                assigned_ignored_det = True
        if valid_detection == no_detection and ignored_gt[i] == 0:
            fn += 1
        elif valid_detection != no_detection and (ignored_gt[i] == 1 or ignored_det[det_idx] == 1):
            assigned[det_idx] = True
        elif valid_detection != no_detection:
            tp += 1
            thresholds.append(scores[det_idx])
            if compute_aos:
                delta.append(gt["alpha"][i] - dt["alpha"][det_idx])
            assigned[det_idx] = True
    similarity = 0.0
    if compute_fp:
        for i in range(det_size):
            if not (assigned[i] or ignored_det[i] == -1 or ignored_det[i] == 1 or below[i]):
                fp += 1
        nstuff = 0
        if metric == 0:
            for dc in dc_bboxes:
                for j in range(det_size):
                    if assigned[j] or ignored_det[j] in (-1, 1) or below[j]:
                        continue
                    if image_overlap(dt["bbox"][j], dc, criterion=0) > min_overlap:
                        assigned[j] = True
                        nstuff += 1
        fp -= nstuff
        if compute_aos:
            similarity = sum((1.0 + math.cos(d)) / 2.0 for d in delta) if (tp > 0 or fp > 0) else -1
    return tp, fp, fn, similarity, thresholds


def get_thresholds(scores, num_gt, num_sample_pts=41):
    scores = sorted(scores, reverse=True)
    current_recall = 0
    thresholds = []
    for i, score in enumerate(scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < len(scores) - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < len(scores) - 1:
            continue
        thresholds.append(score)
        current_recall += 1 / (num_sample_pts - 1.0)
    return thresholds


def frame_overlaps(gts, dts, metric):
    """Per frame, overlaps[det][gt] (the port's calculate_iou_partly, with dets as rows)."""
    return [
        [[pair_overlap(dt, i, gt, j, metric) for j in range(len(gt["name"]))] for i in range(len(dt["name"]))]
        for gt, dt in zip(gts, dts)
    ]


def eval_class(gts, dts, overlaps, cls, difficulty, metric, min_overlap, compute_aos):
    """Monotone precision and AOS at the 41 sample points (numpy arrays)."""
    cleaned = [clean_data(gt, dt, cls, difficulty) for gt, dt in zip(gts, dts)]
    total_valid = sum(c[0] for c in cleaned)
    all_scores = []
    for f, (gt, dt) in enumerate(zip(gts, dts)):
        _, ig, idt, dc = cleaned[f]
        all_scores += compute_statistics(overlaps[f], gt, dt, ig, idt, dc, metric, min_overlap)[4]
    thresholds = get_thresholds(all_scores, total_valid)
    pr = np.zeros((len(thresholds), 4))
    for f, (gt, dt) in enumerate(zip(gts, dts)):
        _, ig, idt, dc = cleaned[f]
        for t, thresh in enumerate(thresholds):
            tp, fp, fn, sim, _ = compute_statistics(
                overlaps[f], gt, dt, ig, idt, dc, metric, min_overlap, thresh, True, compute_aos
            )
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            if sim != -1:
                pr[t, 3] += sim
    precision = np.zeros(41)
    aos = np.zeros(41)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(thresholds)):
            precision[i] = pr[i, 0] / (pr[i, 0] + pr[i, 1])
            if compute_aos:
                aos[i] = pr[i, 3] / (pr[i, 0] + pr[i, 1])
    for i in range(len(thresholds)):
        precision[i] = np.max(precision[i:])
        if compute_aos:
            aos[i] = np.max(aos[i:])
    return precision, aos


def ap11(prec):
    return sum(prec[i] for i in range(0, 41, 4)) / 11 * 100


def ap40(prec):
    return sum(prec[i] for i in range(1, 41)) / 40 * 100


def reference_eval(gt_labels, det_labels, classes=("Car", "Pedestrian", "Cyclist")) -> dict:
    """The port's numbers in pc3d's JSON layout ``{class: {set: {metric: {difficulty: {"AP11",
    "AP40"}}}}}``; AOS is None when no detection carries an alpha (pc3d's rule)."""
    gts = [to_anno(g) for g in gt_labels]
    dts = [to_anno(d) for d in det_labels]
    compute_aos = any(a != -10 for dt in dts for a in dt["alpha"])
    overlaps = [frame_overlaps(gts, dts, m) for m in range(3)]
    out = {}
    for cls in classes:
        key = cls.lower()
        class_i = CLASS_NAMES.index(key)
        out[cls] = {}
        for set_name, table in (("strict", STRICT), ("loose", LOOSE)):
            res = {m: {} for m in ("bbox", "bev", "3d", "aos")}
            for diff_i, diff in enumerate(("easy", "moderate", "hard")):
                for m_i, metric in enumerate(("bbox", "bev", "3d")):
                    threshold = table[m_i][class_i]
                    prec, aos = eval_class(
                        gts, dts, overlaps[m_i], key, diff_i, m_i, threshold, compute_aos and m_i == 0
                    )
                    res[metric][diff] = {"AP11": ap11(prec), "AP40": ap40(prec)}
                    if m_i == 0:
                        res["aos"][diff] = (
                            {"AP11": ap11(aos), "AP40": ap40(aos)}
                            if compute_aos
                            else {"AP11": None, "AP40": None}
                        )
            out[cls][set_name] = res
    return out
