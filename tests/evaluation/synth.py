"""Random KITTI-like frames that exercise every branch of the protocol: neighbouring classes,
DontCare regions, boxes exactly on the difficulty boundaries, crowded ground truth competing for
the same detections, exact and near-exact detections, duplicates, class confusions, tiny
detections, tied scores and empty frames."""

from __future__ import annotations

import numpy as np

from pc3d.evaluation.kitti_labels import KittiEvalLabels

GT_NAMES = [
    "Car",
    "Car",
    "Car",
    "Pedestrian",
    "Pedestrian",
    "Cyclist",
    "Van",
    "Person_sitting",
    "Truck",
    "Misc",
    "DontCare",
]
SIZES = {
    "Car": (1.5, 1.6, 3.9),
    "Van": (2.2, 1.9, 5.0),
    "Truck": (3.0, 2.5, 10.0),
    "Pedestrian": (1.7, 0.6, 0.8),
    "Person_sitting": (1.2, 0.6, 0.8),
    "Cyclist": (1.7, 0.6, 1.8),
    "Misc": (1.5, 1.0, 2.0),
    "DontCare": (-1.0, -1.0, -1.0),
}
DET_NAMES = ["Car", "Pedestrian", "Cyclist", "Van"]


def _frame(rng: np.random.Generator, rows: list[dict], detections: bool, alpha: bool) -> KittiEvalLabels:
    if not rows:
        return KittiEvalLabels.empty(detections)
    return KittiEvalLabels(
        name=np.array([r["name"] for r in rows]),
        truncated=np.array([r["truncated"] for r in rows]),
        occluded=np.array([r["occluded"] for r in rows]),
        alpha=np.array([r["alpha"] if alpha or not detections else -10.0 for r in rows]),
        bbox=np.array([r["bbox"] for r in rows]),
        dimensions=np.array([r["dims"] for r in rows]),
        location=np.array([r["loc"] for r in rows]),
        rotation_y=np.array([r["ry"] for r in rows]),
        score=np.array([r["score"] for r in rows]) if detections else None,
    )


def random_gt_object(rng: np.random.Generator, name: str | None = None, near: dict | None = None) -> dict:
    name = name or str(rng.choice(GT_NAMES))
    if name == "DontCare":
        left, top = rng.uniform(0, 1100), rng.uniform(100, 300)
        return {
            "name": name,
            "truncated": -1.0,
            "occluded": -1,
            "alpha": -10.0,
            "bbox": [left, top, left + rng.uniform(5, 120), top + rng.uniform(5, 80)],
            "dims": [-1.0, -1.0, -1.0],
            "loc": [-1000.0, -1000.0, -1000.0],
            "ry": -10.0,
        }
    h, w, length = (s * rng.uniform(0.9, 1.1) for s in SIZES[name])
    if near is not None:  # crowded: a second object almost on top of another
        x = near["loc"][0] + rng.normal(0, 0.4)
        z = near["loc"][2] + rng.normal(0, 0.4)
        left, top = near["bbox"][0] + rng.normal(0, 6), near["bbox"][1] + rng.normal(0, 4)
        height = near["bbox"][3] - near["bbox"][1] + rng.normal(0, 4)
    else:
        x, z = rng.uniform(-20, 20), rng.uniform(4, 60)
        left, top = rng.uniform(0, 1100), float(rng.integers(100, 250))
        # heights on and around the difficulty boundaries (40 and 25 px) happen often
        height = float(rng.choice([40.0, 25.0, 39.5, 41.0, 24.0, rng.uniform(10, 150)]))
    return {
        "name": name,
        "truncated": float(rng.choice([0.0, 0.15, 0.3, 0.5, 0.6, rng.uniform(0, 1)])),
        "occluded": int(rng.choice([0, 0, 1, 2, 3])),
        "alpha": float(rng.uniform(-np.pi, np.pi)),
        "bbox": [left, top, left + max(height * rng.uniform(0.5, 2.5), 1.0), top + height],
        "dims": [h, w, length],
        "loc": [x, rng.uniform(1.0, 2.0), z],
        "ry": float(rng.uniform(-np.pi, np.pi)),
    }


def detection_of(rng: np.random.Generator, obj: dict, noise: float) -> dict:
    """A detection of `obj` with relative `noise` (0: identical box)."""
    det = {k: (list(v) if isinstance(v, list) else v) for k, v in obj.items()}
    if noise > 0:
        det["loc"] = [v + rng.normal(0, noise) for v in obj["loc"]]
        det["dims"] = [v * (1 + rng.normal(0, noise / 3)) for v in obj["dims"]]
        det["ry"] = obj["ry"] + rng.normal(0, noise)
        det["bbox"] = [v + rng.normal(0, 20 * noise) for v in obj["bbox"]]
        det["alpha"] = obj["alpha"] + rng.normal(0, noise * 2)
    det["dims"] = [abs(v) for v in det["dims"]]
    if rng.random() < 0.1:
        det["name"] = str(rng.choice(DET_NAMES))
    det["score"] = float(rng.random())
    return det


def random_frames(
    rng: np.random.Generator,
    num_frames: int,
    max_gt: int = 7,
    alpha: bool = True,
    tie_scores: bool = False,
    crowded: bool = True,
) -> tuple[list[KittiEvalLabels], list[KittiEvalLabels]]:
    gts, dets = [], []
    for _ in range(num_frames):
        gt_rows: list[dict] = []
        for _ in range(int(rng.integers(0, max_gt + 1))):
            near = (
                gt_rows[-1]
                if crowded and gt_rows and gt_rows[-1]["name"] != "DontCare" and rng.random() < 0.25
                else None
            )
            gt_rows.append(random_gt_object(rng, near=near))
        det_rows = []
        for obj in gt_rows:
            if obj["name"] in ("DontCare", "Misc"):
                if obj["name"] == "DontCare" and rng.random() < 0.3:  # a detection inside DontCare
                    inside = random_gt_object(rng, "Car")
                    b = obj["bbox"]
                    inside["bbox"] = [b[0] + 1, b[1] + 1, b[2] - 1, b[3] + rng.uniform(-1, 60)]
                    det_rows.append(detection_of(rng, inside, 0.0))
                continue
            if rng.random() < 0.8:
                noise = float(rng.choice([0.0, 0.02, 0.1, 0.3]))
                det_rows.append(detection_of(rng, obj, noise))
                if rng.random() < 0.2:  # duplicate
                    det_rows.append(detection_of(rng, obj, float(rng.choice([0.0, 0.05]))))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            fp = random_gt_object(rng, str(rng.choice(DET_NAMES)))
            fp["score"] = float(rng.random())
            det_rows.append(fp)
        order = rng.permutation(len(det_rows))
        det_rows = [det_rows[i] for i in order]
        if tie_scores:
            for d in det_rows:
                d["score"] = round(d["score"] * 4) / 4
        gts.append(_frame(rng, gt_rows, detections=False, alpha=True))
        dets.append(_frame(rng, det_rows, detections=True, alpha=alpha))
    return gts, dets


def perfect_detections(gts: list[KittiEvalLabels], rng: np.random.Generator) -> list[KittiEvalLabels]:
    """Every non-DontCare ground-truth object detected exactly, random scores."""
    out = []
    for g in gts:
        keep = g.name != "DontCare"
        out.append(
            KittiEvalLabels(
                name=g.name[keep],
                truncated=g.truncated[keep],
                occluded=g.occluded[keep],
                alpha=g.alpha[keep],
                bbox=g.bbox[keep],
                dimensions=g.dimensions[keep],
                location=g.location[keep],
                rotation_y=g.rotation_y[keep],
                score=rng.random(int(keep.sum())),
            )
        )
    return out


def obj(
    name: str = "Car",
    bbox: tuple = (100.0, 100.0, 180.0, 160.0),
    loc: tuple = (0.0, 1.5, 20.0),
    dims: tuple = (1.5, 1.6, 3.9),
    ry: float = 0.0,
    truncated: float = 0.0,
    occluded: int = 0,
    alpha: float = 0.0,
    score: float = 0.5,
) -> dict:
    """One label row (dims are h, w, l as in the files)."""
    return {
        "name": name,
        "bbox": list(bbox),
        "loc": list(loc),
        "dims": list(dims),
        "ry": ry,
        "truncated": truncated,
        "occluded": occluded,
        "alpha": alpha,
        "score": score,
    }


def labels(rows: list[dict], detections: bool = False) -> KittiEvalLabels:
    return _frame(np.random.default_rng(0), rows, detections=detections, alpha=True)


def row_grid(n: int, name: str = "Car", **kw) -> list[dict]:
    """`n` objects of one class, far apart in 3D and in the image, rotations all around."""
    out = []
    for i in range(n):
        col, line = i % 10, i // 10
        left, top = 10.0 + 120 * col, 20.0 + 80 * line
        out.append(
            obj(
                name,
                bbox=(left, top, left + 100, top + kw.get("height", 60.0)),
                loc=(-40.0 + 9 * col, 1.6, 10.0 + 9 * line),
                ry=[0.0, np.pi / 2, -np.pi / 2, np.pi, 0.3, -2.1][i % 6] + 0.0,
                **{k: v for k, v in kw.items() if k != "height"},
            )
        )
    return out
