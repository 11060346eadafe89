"""Which metric names are headlines: the one ordering an evaluation's console line and
``pc3d plot`` share (no dependencies, so plotting imports no torch)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["headline_order"]

#: Summary metrics (lower case) that come before per-class ones: mIoU, accuracies, mAP, COCO's
#: AP numbers, top-k accuracies.
_SUMMARY = re.compile(r"(miou|m?ap(\d+|[sml])?(_[\d.]+)?|acc(_cls)?|top\d+|mar(_[\d.]+)?)")


def headline_order(names: Iterable[str]) -> list[str]:
    """Metric names, the headline ones first (each group in its own order): KITTI's ranking
    numbers (``AP40_moderate_strict``), then summaries over classes (``miou``, ``acc``,
    ``mAP_0.25``, COCO's ``AP``, ``top1``; any case), then the rest (per-class values). What an
    evaluation's console line and ``pc3d plot`` show first."""
    names = list(names)

    def rank(name: str) -> int:
        if "AP40_moderate_strict" in name:
            return 0
        return 1 if _SUMMARY.fullmatch(name.rsplit("/", 1)[-1].lower()) else 2

    return sorted(names, key=rank)  # stable: each group keeps the metrics' own order
