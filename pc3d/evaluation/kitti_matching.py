"""The KITTI protocol's greedy assignment of detections to ground truth and its recall sampling,
for one class, difficulty and overlap threshold at a time (see `pc3d.evaluation.kitti`).

The per-frame greedy assignment is sequential by nature; here it runs for all frames, all 41
score thresholds and all mutually independent ground-truth boxes at once, and only ground-truth
boxes that compete for the same detection are visited in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pc3d.evaluation.kitti_protocol import NUM_SAMPLE_POINTS

__all__ = ["CandidateMatches", "precision_at_thresholds", "sample_thresholds"]

# The port's "no detection yet" score: a detection scoring at or below it is never chosen.
_NO_DETECTION = -10000000.0
_BIG = np.iinfo(np.int64).max


@dataclass
class CandidateMatches:
    """Candidate matches of one metric: ground-truth / detection pairs with a positive overlap,
    sorted by ground truth, then detection (the port's visiting order).

    Attributes:
        gt: ``int64[E]`` index of the ground-truth box (into all frames' boxes).
        det: ``int64[E]`` index of the detection.
        overlap: ``float64[E]`` their overlap (> 0).
    """

    gt: np.ndarray
    det: np.ndarray
    overlap: np.ndarray


@dataclass
class _Candidates:
    """The candidates that can match at one overlap threshold, grouped by ground truth."""

    gt: np.ndarray  # int64[E]
    det: np.ndarray  # int64[E]
    overlap: np.ndarray  # float64[E]
    seg_start: np.ndarray  # first candidate of each ground-truth box
    seg_of_edge: np.ndarray  # the ground-truth box (segment) of each candidate
    det_ids: np.ndarray  # the detections that are candidates at all
    det_local: np.ndarray  # each candidate's index into det_ids
    by_level: list[np.ndarray]  # candidates of the ground-truth boxes of each visiting level


def precision_at_thresholds(
    edges: CandidateMatches,
    score: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    gt_state: np.ndarray,
    det_state: np.ndarray,
    min_overlap: float,
    dc_cover: np.ndarray | None,
    with_aos: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Precision (and orientation similarity) at the 41 sampled thresholds for one class,
    difficulty and overlap threshold.

    Args:
        edges: every candidate pair of the metric.
        score: ``float64[D]`` detection scores.
        gt_alpha: ``float64[G]`` observation angles of the ground truth.
        det_alpha: ``float64[D]`` observation angles of the detections.
        gt_state: ``int8[G]`` 0 counts, 1 ignored, -1 not involved.
        det_state: ``int8[D]`` 0 of the class, 1 ignored, -1 not involved.
        min_overlap: a pair matches when its overlap is strictly above this.
        dc_cover: ``float64[D]`` (2D metric only) the largest fraction of each detection inside
            a DontCare region, else None.
        with_aos: also compute the orientation similarity.

    Returns:
        ``float64[41]`` precision and (with `with_aos`) orientation similarity, else None.
    """
    keep = (edges.overlap > min_overlap) & (gt_state[edges.gt] >= 0) & (det_state[edges.det] >= 0)
    cand = _group(edges.gt[keep], edges.det[keep], edges.overlap[keep])
    num_valid_gt = int((gt_state == 0).sum())
    thresholds = sample_thresholds(_true_positive_scores(cand, score, gt_state, det_state), num_valid_gt)
    # Missed ground truth does not enter the precision; only true and false positives do.
    tp, similarity, taken = _match_at_thresholds(
        cand, score, gt_alpha, det_alpha, gt_state, det_state, thresholds, with_aos
    )

    # False positives: detections of the class at or above the threshold left unmatched,
    # except (2D only) those lying inside a DontCare region.
    counted = det_state == 0
    if dc_cover is not None:
        counted &= ~(dc_cover > min_overlap)
    above = np.sort(score[counted])
    fp = (len(above) - np.searchsorted(above, thresholds, side="left")).astype(np.float64)
    fp -= (taken & counted[cand.det_ids][:, None]).sum(0)

    with np.errstate(divide="ignore", invalid="ignore"):
        prec = _monotone(tp / (tp + fp))
        orient = _monotone(similarity / (tp + fp)) if with_aos else None
    return prec, orient


def _group(eg: np.ndarray, ed: np.ndarray, eo: np.ndarray) -> _Candidates:
    seg_start, seg_of_edge = _segments(eg)
    levels = _visiting_levels(seg_of_edge, ed, len(seg_start))
    det_ids, det_local = np.unique(ed, return_inverse=True)
    by_level = [np.flatnonzero(levels[seg_of_edge] == lv) for lv in range(int(levels.max(initial=-1)) + 1)]
    return _Candidates(eg, ed, eo, seg_start, seg_of_edge, det_ids, det_local, by_level)


def _true_positive_scores(
    cand: _Candidates, score: np.ndarray, gt_state: np.ndarray, det_state: np.ndarray
) -> np.ndarray:
    """Pass 1: each ground truth takes the free candidate with the highest score; the scores of
    the true positives define the thresholds."""
    eg, ed = cand.gt, cand.det
    taken = np.zeros(len(cand.det_ids), dtype=bool)
    tp_scores = []
    for e in cand.by_level:
        starts, seg = _segments(eg[e])
        s = score[ed[e]]
        ok = ~taken[cand.det_local[e]] & (s > _NO_DETECTION)
        val = np.where(ok, s, -np.inf)
        best = np.maximum.reduceat(val, starts)
        first = np.minimum.reduceat(np.where(ok & (val == best[seg]), np.arange(len(e)), _BIG), starts)
        chosen = e[first[best > -np.inf]]
        taken[cand.det_local[chosen]] = True
        tp = (gt_state[eg[chosen]] == 0) & (det_state[ed[chosen]] == 0)
        tp_scores.append(score[ed[chosen[tp]]])
    return np.concatenate(tp_scores) if tp_scores else np.zeros(0)


def _match_at_thresholds(
    cand: _Candidates,
    score: np.ndarray,
    gt_alpha: np.ndarray,
    det_alpha: np.ndarray,
    gt_state: np.ndarray,
    det_state: np.ndarray,
    thresholds: np.ndarray,
    with_aos: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass 2, at every threshold at once: each ground truth takes the free candidate (score at
    least the threshold) with the largest overlap, else the first free ignored one.

    Returns:
        ``float64[T]`` true positives and orientation similarity per threshold, and
        ``bool[len(det_ids), T]`` the detections taken.
    """
    eg, ed, eo = cand.gt, cand.det, cand.overlap
    num_t = len(thresholds)
    taken = np.zeros((len(cand.det_ids), num_t), dtype=bool)
    tp = np.zeros(num_t)
    similarity = np.zeros(num_t)
    for e in cand.by_level:
        starts, seg = _segments(eg[e])
        pos = np.arange(len(e))[:, None]
        free = (score[ed[e]][:, None] >= thresholds[None, :]) & ~taken[cand.det_local[e]]
        ignored = (det_state[ed[e]] == 1)[:, None]
        val = np.where(free & ~ignored, eo[e][:, None], -np.inf)
        best = np.maximum.reduceat(val, starts, axis=0)
        pick = np.minimum.reduceat(np.where((val == best[seg]) & (val > -np.inf), pos, _BIG), starts, axis=0)
        fallback = np.minimum.reduceat(np.where(free & ignored, pos, _BIG), starts, axis=0)
        pick = np.where(pick < _BIG, pick, fallback)
        has = pick < _BIG
        seg_gts = eg[e][starts]
        gi, ti = np.nonzero(has)
        chosen = e[pick[gi, ti]]
        taken[cand.det_local[chosen], ti] = True
        is_tp = (gt_state[seg_gts[gi]] == 0) & (det_state[ed[chosen]] == 0)
        tp += np.bincount(ti[is_tp], minlength=num_t)
        if with_aos:
            delta = gt_alpha[seg_gts[gi[is_tp]]] - det_alpha[ed[chosen[is_tp]]]
            similarity += np.bincount(ti[is_tp], weights=(1.0 + np.cos(delta)) / 2.0, minlength=num_t)
    return tp, similarity, taken


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts of the runs of equal values in sorted `keys` and the run index of each element."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    new = np.concatenate([[True], keys[1:] != keys[:-1]])
    return np.flatnonzero(new), np.cumsum(new) - 1


def _monotone(values: np.ndarray) -> np.ndarray:
    """Pad to 41 sample points with zeros and take the maximum over higher recalls (NaN, from
    a threshold without any counted detection, spreads as in the port)."""
    out = np.zeros(NUM_SAMPLE_POINTS)
    out[: len(values)] = values
    return np.maximum.accumulate(out[::-1])[::-1]


def _visiting_levels(seg_of_edge: np.ndarray, det: np.ndarray, num_segments: int) -> np.ndarray:
    """Order ground-truth boxes that compete for detections: a box gets a level above every
    earlier box of its frame that shares a candidate detection with it (transitively). Boxes of
    one level share no candidates and can be matched at the same time. ``int64[num_segments]``.
    """
    levels = np.zeros(num_segments, dtype=np.int64)
    if det.size < 2:
        return levels
    order = np.lexsort((seg_of_edge, det))
    d, s = det[order], seg_of_edge[order]
    shared = d[1:] == d[:-1]
    before, after = s[:-1][shared], s[1:][shared]
    while before.size:
        lifted = levels.copy()
        np.maximum.at(lifted, after, levels[before] + 1)
        if np.array_equal(lifted, levels):
            break
        levels = lifted
    return levels


def sample_thresholds(scores: np.ndarray, num_gt: int) -> np.ndarray:
    """The devkit's score thresholds: walking the true-positive scores from the highest, keep a
    score when its recall is the closest to the next 1/40 step (and always the last one).

    Args:
        scores: ``float64[K]`` scores of the true positives.
        num_gt: the number of valid ground-truth boxes.

    Returns:
        At most 41 thresholds, descending.
    """
    if scores.size == 0:
        return np.zeros(0)
    s = np.sort(scores)[::-1]
    k = len(s)
    i = np.arange(k)
    left = (i + 1) / num_gt
    right = np.where(i < k - 1, (i + 2) / num_gt, left)
    not_last = i < k - 1
    out = []
    current = 0.0
    pos = 0
    step = 1 / (NUM_SAMPLE_POINTS - 1.0)
    while pos < k:
        # The recall target advances only when a score is kept, so each kept score is the first
        # one (from `pos`) whose recall interval reaches the target; the last always is.
        skip = ((right[pos:] - current) < (current - left[pos:])) & not_last[pos:]
        pos += int(np.argmin(skip))
        out.append(s[pos])
        current += step
        pos += 1
    return np.asarray(out)
