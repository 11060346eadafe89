"""The result of a KITTI evaluation: AP11 / AP40 per class, overlap set, metric and difficulty,
as arrays, nested dictionaries (JSON), the familiar console table, or a JSON file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.evaluation.kitti_protocol import DIFFICULTIES, METRICS, OVERLAP_SETS
from pc3d.io.jsonio import to_jsonable, write_json

__all__ = ["KittiEvalResult"]


@dataclass(frozen=True)
class KittiEvalResult:
    """AP of one evaluation, in percent.

    Attributes:
        classes: the evaluated classes, in order.
        ap11: ``float64[C, 2, 4, 3]`` indexed ``[class, overlap set (strict, loose), metric
            (bbox, bev, 3d, aos), difficulty (easy, moderate, hard)]``; the AOS row is NaN when
            AOS was not computed.
        ap40: the same with 40 recall points.
        precision: ``float64[C, 2, 4, 3, 41]`` the monotone precision (AOS: orientation
            similarity) at each of the 41 sampled thresholds, as fractions.
        aos_computed: whether the detections carried observation angles.
        min_overlaps: ``float64[C, 2, 3]`` the thresholds used (bbox, bev, 3d).
        num_frames: number of evaluated frames.
    """

    classes: tuple[str, ...]
    ap11: np.ndarray
    ap40: np.ndarray
    precision: np.ndarray
    aos_computed: bool
    min_overlaps: np.ndarray
    num_frames: int

    def to_dict(self) -> dict[str, Any]:
        """``{class: {"strict"|"loose": {"bbox"|"bev"|"3d"|"aos": {"easy"|"moderate"|"hard":
        {"AP11": x, "AP40": y}}}}}`` in percent, as JSON data (`pc3d.io.jsonio.to_jsonable`:
        NaN, i.e. AOS when not computed, becomes None)."""
        out: dict[str, Any] = {}
        for c, cls in enumerate(self.classes):
            out[cls] = {}
            for s, oset in enumerate(OVERLAP_SETS):
                out[cls][oset] = {}
                for m, metric in enumerate((*METRICS, "aos")):
                    out[cls][oset][metric] = {
                        diff: {"AP11": self.ap11[c, s, m, d], "AP40": self.ap40[c, s, m, d]}
                        for d, diff in enumerate(DIFFICULTIES)
                    }
        return to_jsonable(out)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_dict()` to `path` as JSON, atomically (`pc3d.io.jsonio.write_json`).

        Returns:
            The path written.
        """
        return write_json(path, self.to_dict())

    def table(self) -> str:
        """The familiar console table: per class and overlap set, AP11 then AP40 for bbox, bev,
        3d (and aos), each as ``easy, moderate, hard``."""
        lines = [
            f"KITTI evaluation of {self.num_frames} frames (columns: easy, moderate, hard; AP in percent)"
        ]
        names = ("bbox", "bev ", "3d  ", "aos ")
        for c, cls in enumerate(self.classes):
            for s, oset in enumerate(OVERLAP_SETS):
                thr = ", ".join(f"{t:.2f}" for t in self.min_overlaps[c, s])
                for label, ap in (("AP11", self.ap11), ("AP40", self.ap40)):
                    lines.append(f"{cls} {label}@{thr} ({oset}):")
                    for m, name in enumerate(names):
                        if m == 3 and not self.aos_computed:
                            continue
                        digits = 2 if m == 3 else 4
                        vals = ", ".join(f"{v:.{digits}f}" for v in ap[c, s, m])
                        lines.append(f"{name} {label}:{vals}")
        return "\n".join(lines)
