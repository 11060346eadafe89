"""KITTI ``label_2`` records for evaluation: one :class:`KittiEvalLabels` per frame, read from files
with errors that name the file and line.

A ``label_2`` line has 15 whitespace-separated fields (ground truth) or 16 (detections, whose
16th field is the confidence score)::

    type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]

``h, w, l`` are the box height, width and length in metres, ``x, y, z`` the bottom centre in
rectified camera coordinates (x right, y down, z forward) and ``rotation_y`` the yaw about the
camera y axis (0 along +x; ``-pi/2`` faces +z). ``DontCare`` lines mark image regions whose
detections are neither rewarded nor penalised; their 3D fields are placeholders (``-1``,
``-1000``, ``-10``) and are not checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.errors import FormatError, ShapeError

#: Object types of the KITTI object benchmark, in the devkit's spelling.
KITTI_TYPES: tuple[str, ...] = (
    "Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare",
)
_CANONICAL = {name.lower(): name for name in KITTI_TYPES}

#: Number of fields of a ground-truth line and of a detection line (score last).
GT_FIELDS = 15
DET_FIELDS = 16


def canonical_type(name: str) -> str | None:
    """The KITTI spelling of `name` (the devkit compares types case-insensitively), or None."""
    return _CANONICAL.get(name.lower())


@dataclass(frozen=True, eq=False)
class KittiEvalLabels:
    """The objects of one frame, as parallel arrays (N objects; N may be 0), for the evaluation.

    Unlike :class:`pc3d.io.kitti.KittiLabels` (float32 columns, made for building boxes), this
    keeps the values as written, in float64, because the protocol compares them with the
    devkit's limits (truncation <= 0.15, height > 40 px), and it knows whether it holds ground
    truth or detections (`score`).

    Attributes:
        name: ``ndarray[N]`` of str, KITTI types in canonical spelling (see `KITTI_TYPES`).
        truncated: ``float64[N]``, 0 (fully visible) .. 1 (fully truncated).
        occluded: ``int64[N]``, 0 visible, 1 partly, 2 largely occluded, 3 unknown.
        alpha: ``float64[N]``, observation angle in radians; ``-10`` means "not given".
        bbox: ``float64[N, 4]``, 2D box ``left, top, right, bottom`` in pixels.
        dimensions: ``float64[N, 3]``, ``h, w, l`` in metres (file order).
        location: ``float64[N, 3]``, bottom centre ``x, y, z`` in rectified camera coordinates.
        rotation_y: ``float64[N]``, yaw about camera y in radians.
        score: ``float64[N]`` confidences for detections, None for ground truth.
        source: where the records came from (a path), used in error messages.
    """

    name: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray | None = None
    source: str = field(default="<arrays>", compare=False)

    def __post_init__(self) -> None:
        names = np.asarray(self.name, dtype=str).reshape(-1)
        canon = [canonical_type(str(n)) for n in names]
        for i, (given, known) in enumerate(zip(names, canon, strict=True)):
            if known is None:
                raise FormatError(f"{self.source}: object {i}: unknown class name {str(given)!r} "
                                  f"(KITTI types: {', '.join(KITTI_TYPES)})")
        n = len(names)
        object.__setattr__(self, "name", np.asarray(canon, dtype=str).reshape(n))
        shapes = {"truncated": (n,), "occluded": (n,), "alpha": (n,), "bbox": (n, 4),
                  "dimensions": (n, 3), "location": (n, 3), "rotation_y": (n,)}
        if self.score is not None:
            shapes["score"] = (n,)
        for key, shape in shapes.items():
            arr = np.asarray(getattr(self, key), dtype=np.float64)
            if arr.size == 0 and n == 0:
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ShapeError(f"{self.source}: {key} has shape {arr.shape}, expected {shape} "
                                 f"for {n} objects")
            if not np.isfinite(arr).all():
                bad = int(np.argwhere(~np.isfinite(arr))[0][0])
                raise FormatError(f"{self.source}: object {bad}: {key} is not finite")
            if key == "occluded":
                if not np.array_equal(arr, np.round(arr)):
                    raise FormatError(f"{self.source}: occluded must be an integer")
                arr = arr.astype(np.int64)
            object.__setattr__(self, key, arr)
        real = self.name != "DontCare"
        if self.score is not None and not real.all():
            i = int(np.flatnonzero(~real)[0])
            raise FormatError(f"{self.source}: object {i}: DontCare is not a detection class")
        negative = real & (self.dimensions < 0).any(axis=1)
        if negative.any():
            i = int(np.flatnonzero(negative)[0])
            raise FormatError(f"{self.source}: object {i} ({self.name[i]}): negative size "
                              f"h, w, l = {self.dimensions[i].tolist()}")

    def __len__(self) -> int:
        return len(self.name)

    @property
    def is_detection(self) -> bool:
        return self.score is not None

    @classmethod
    def empty(cls, detections: bool = False, source: str = "<empty>") -> KittiEvalLabels:
        """A frame with no objects."""
        z = np.zeros(0)
        return cls(name=np.zeros(0, dtype=str), truncated=z, occluded=z, alpha=z,
                   bbox=np.zeros((0, 4)), dimensions=np.zeros((0, 3)), location=np.zeros((0, 3)),
                   rotation_y=z, score=z if detections else None, source=source)


def parse_kitti_labels(text: str, detections: bool, source: str = "<string>") -> KittiEvalLabels:
    """Parse the text of one ``label_2`` file.

    Args:
        text: the file's content; blank lines are skipped.
        detections: True for result files (16 fields, score last), False for ground truth (15).
        source: the file name used in error messages.

    Raises:
        FormatError: naming `source` and the 1-based line for a wrong number of fields, a field
            that is not a finite number, an unknown class name, or a negative size.
    """
    expected = DET_FIELDS if detections else GT_FIELDS
    names: list[str] = []
    rows: list[list[float]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{source}:{lineno}"
        if len(fields) != expected:
            hint = ""
            if detections and len(fields) == GT_FIELDS:
                hint = " (a detection needs its score as the 16th field)"
            elif not detections and len(fields) == DET_FIELDS:
                hint = " (ground truth has no score field)"
            raise FormatError(f"{where}: expected {expected} fields, found {len(fields)}{hint}")
        name = canonical_type(fields[0])
        if name is None:
            raise FormatError(f"{where}: unknown class name {fields[0]!r} "
                              f"(KITTI types: {', '.join(KITTI_TYPES)})")
        values: list[float] = []
        for col, token in enumerate(fields[1:], start=2):
            try:
                value = float(token)
            except ValueError:
                raise FormatError(f"{where}: field {col} ({_FIELD_NAMES[col - 1]}) is not a "
                                  f"number: {token!r}") from None
            if not math.isfinite(value):
                raise FormatError(f"{where}: field {col} ({_FIELD_NAMES[col - 1]}) is not "
                                  f"finite: {token!r}")
            values.append(value)
        if detections and name == "DontCare":
            raise FormatError(f"{where}: DontCare is not a detection class")
        if name != "DontCare":
            if min(values[7:10]) < 0:
                raise FormatError(f"{where}: negative size h, w, l = {values[7:10]} for {name}")
            if values[1] != round(values[1]):
                raise FormatError(f"{where}: occluded must be an integer, found {fields[2]!r}")
        names.append(name)
        rows.append(values)
    if not rows:
        return KittiEvalLabels.empty(detections, source=source)
    a = np.asarray(rows, dtype=np.float64)
    return KittiEvalLabels(name=np.asarray(names, dtype=str), truncated=a[:, 0], occluded=a[:, 1],
                       alpha=a[:, 2], bbox=a[:, 3:7], dimensions=a[:, 7:10],
                       location=a[:, 10:13], rotation_y=a[:, 13],
                       score=a[:, 14] if detections else None, source=source)


_FIELD_NAMES = ("type", "truncated", "occluded", "alpha", "left", "top", "right", "bottom",
                "height", "width", "length", "x", "y", "z", "rotation_y", "score")


def read_kitti_labels(path: str | Path, detections: bool) -> KittiEvalLabels:
    """Read one ``label_2`` file (see `parse_kitti_labels`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not a text file ({err.reason})") from None
    return parse_kitti_labels(text, detections, source=str(path))


def read_frame_ids(path: str | Path) -> list[str]:
    """Frame ids from a split file (one id per line, e.g. ``000123``; blank lines skipped)."""
    path = Path(path)
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i]
    for lineno, frame in enumerate(ids, start=1):
        if any(c in frame for c in "/\\") or frame.startswith("."):
            raise FormatError(f"{path}:{lineno}: not a frame id: {frame!r}")
    return ids


@dataclass(frozen=True)
class LabelDirs:
    """Ground truth and detections of the evaluated frames, in the same order.

    Attributes:
        ids: frame ids (file stems).
        gts, dets: one record per frame; a frame without a detection file has an empty record.
        missing_dets: ids of the frames without a detection file (evaluated as no detections).
        unmatched_dets: detection files without ground truth in the evaluated set (not read).
    """

    ids: list[str]
    gts: list[KittiEvalLabels]
    dets: list[KittiEvalLabels]
    missing_dets: list[str]
    unmatched_dets: list[str]


def load_label_dirs(gt_dir: str | Path, det_dir: str | Path,
                    frame_ids: Sequence[str] | None = None) -> LabelDirs:
    """Read ground truth and detections for the evaluation, matching frames by file name.

    Args:
        gt_dir: folder of ground-truth ``<id>.txt`` files.
        det_dir: folder of detection ``<id>.txt`` files (score as the 16th field).
        frame_ids: frames to evaluate; default: every ``*.txt`` in `gt_dir`, sorted.

    Returns:
        :class:`LabelDirs`. A frame missing from `det_dir` counts as a frame without detections
        (the devkit itself refuses to run; users of the Python ports expect this).

    Raises:
        FileNotFoundError: a folder or a listed ground-truth file is missing.
        FormatError: a malformed line (file and line named).
    """
    gt_dir, det_dir = Path(gt_dir), Path(det_dir)
    for folder in (gt_dir, det_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"not a folder: {folder}")
    if frame_ids is None:
        frame_ids = sorted(p.stem for p in gt_dir.glob("*.txt"))
        if not frame_ids:
            raise FileNotFoundError(f"no ground-truth label files (*.txt) in {gt_dir}")
    ids = list(frame_ids)
    gts, dets, missing = [], [], []
    for frame in ids:
        gt_path = gt_dir / f"{frame}.txt"
        if not gt_path.is_file():
            raise FileNotFoundError(f"ground truth for frame {frame!r} not found: {gt_path}")
        gts.append(read_kitti_labels(gt_path, detections=False))
        det_path = det_dir / f"{frame}.txt"
        if det_path.is_file():
            dets.append(read_kitti_labels(det_path, detections=True))
        else:
            missing.append(frame)
            dets.append(KittiEvalLabels.empty(detections=True, source=str(det_path)))
    wanted = set(ids)
    unmatched = sorted(p.name for p in det_dir.glob("*.txt") if p.stem not in wanted)
    return LabelDirs(ids=ids, gts=gts, dets=dets, missing_dets=missing, unmatched_dets=unmatched)


def from_io_labels(labels: Any, detections: bool) -> KittiEvalLabels:
    """Convert a :class:`pc3d.io.kitti.KittiLabels` record (float32 columns) for the evaluation.

    Each float32 value is read back as the shortest decimal that rounds to it, which restores
    the file's value for KITTI's 2-decimal numbers (float32 0.15 would otherwise exceed the
    truncation limit 0.15 and move a box to a harder difficulty).

    Raises:
        FormatError: `detections` is True and some object has no score (NaN), naming its line.
    """
    def f64(values: np.ndarray) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype == np.float32:
            return arr.astype(str).astype(np.float64)
        return arr.astype(np.float64)

    source = str(getattr(labels, "path", None) or "<pc3d.io record>")
    score = None
    if detections:
        score = f64(labels.score)
        missing = np.isnan(score)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            line = int(labels.line_numbers[i])
            raise FormatError(f"{source}:{line}: a detection needs its score as the 16th field")
    return KittiEvalLabels(name=np.asarray(labels.types), truncated=f64(labels.truncated),
                       occluded=np.asarray(labels.occluded),
                       alpha=f64(labels.alpha), bbox=f64(labels.bbox2d),
                       dimensions=f64(labels.dims_hwl), location=f64(labels.location),
                       rotation_y=f64(labels.rotation_y), score=score, source=source)
