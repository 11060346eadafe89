"""KITTI ``label_2`` records for the evaluation: one :class:`KittiEvalLabels` per frame.

Files are read by pc3d's one label parser, :mod:`pc3d.io.kitti` (float64 values, ``DontCare``
kept, errors naming the file and line; the line format is documented there). This module adds
what the protocol needs on top: canonical class names (the devkit compares them
case-insensitively), ground truth without and detections with a score, and the frame-by-frame
pairing of a ground-truth folder with a result folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError, ShapeError
from pc3d.io import kitti as io_kitti
from pc3d.io.kitti import KittiLabels
from pc3d.io.values import first_non_finite

#: Object types of the KITTI object benchmark, in the devkit's spelling.
KITTI_TYPES: tuple[str, ...] = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
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

    Unlike :class:`pc3d.io.kitti.KittiLabels` (columns of any float dtype, made for building
    boxes), this holds the values as written, in float64, because the protocol compares them
    with the devkit's limits (truncation <= 0.15, height > 40 px), and it knows whether it holds
    ground truth or detections (`score`). `from_io_labels` builds one from a file's records.

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
                raise FormatError(
                    f"{self.source}: object {i}: unknown class name {str(given)!r} "
                    f"(KITTI types: {', '.join(KITTI_TYPES)})"
                )
        n = len(names)
        object.__setattr__(self, "name", np.asarray(canon, dtype=str).reshape(n))
        shapes = {
            "truncated": (n,),
            "occluded": (n,),
            "alpha": (n,),
            "bbox": (n, 4),
            "dimensions": (n, 3),
            "location": (n, 3),
            "rotation_y": (n,),
        }
        if self.score is not None:
            shapes["score"] = (n,)
        for key, shape in shapes.items():
            arr = np.asarray(getattr(self, key), dtype=np.float64)
            if arr.size == 0 and n == 0:
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ShapeError(
                    f"{self.source}: {key} has shape {arr.shape}, expected {shape} for {n} objects"
                )
            bad = first_non_finite(arr)
            if bad is not None:
                raise FormatError(f"{self.source}: object {bad[0]}: {key} is not finite")
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
            raise FormatError(
                f"{self.source}: object {i} ({self.name[i]}): negative size "
                f"h, w, l = {self.dimensions[i].tolist()}"
            )

    def __len__(self) -> int:
        return len(self.name)

    @property
    def is_detection(self) -> bool:
        """Whether the records are detections (they carry scores)."""
        return self.score is not None

    @classmethod
    def empty(cls, detections: bool = False, source: str = "<empty>") -> KittiEvalLabels:
        """A frame with no objects.

        Args:
            detections: an empty set of detections (with an empty score column), not ground truth.
            source: named in error messages.

        Returns:
            The empty record.
        """
        z = np.zeros(0)
        return cls(
            name=np.zeros(0, dtype=str),
            truncated=z,
            occluded=z,
            alpha=z,
            bbox=np.zeros((0, 4)),
            dimensions=np.zeros((0, 3)),
            location=np.zeros((0, 3)),
            rotation_y=z,
            score=z if detections else None,
            source=source,
        )


def parse_kitti_labels(text: str, detections: bool, source: str = "<string>") -> KittiEvalLabels:
    """Parse the text of one ``label_2`` file for the evaluation.

    The text goes through pc3d's one label parser (:func:`pc3d.io.kitti.parse_kitti_labels`,
    float64 values) and then :func:`from_io_labels`.

    Args:
        text: the file's content; blank lines are skipped.
        detections: True for result files (16 fields, score last), False for ground truth (15).
        source: the file name used in error messages.

    Returns:
        The frame's records.

    Raises:
        FormatError: naming `source` and the 1-based line for a wrong number of fields, a field
            that is not a finite number, an unknown class name, or a negative size.
    """
    return from_io_labels(io_kitti.parse_kitti_labels(text, source, np.float64, detections), detections)


def read_kitti_labels(path: str | Path, detections: bool) -> KittiEvalLabels:
    """Read one ``label_2`` file for the evaluation (see `parse_kitti_labels`).

    Args:
        path: the file.
        detections: True for a result file (score as the 16th field), False for ground truth.

    Returns:
        The frame's records.
    """
    return from_io_labels(io_kitti.read_kitti_labels(path, np.float64, detections), detections)


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


def load_label_dirs(
    gt_dir: str | Path, det_dir: str | Path, frame_ids: Sequence[str] | None = None
) -> LabelDirs:
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


def from_io_labels(labels: KittiLabels, detections: bool) -> KittiEvalLabels:
    """The evaluation record of a :class:`pc3d.io.kitti.KittiLabels` record.

    Records read with ``dtype=np.float64`` (as `read_kitti_labels` here does) are used as they
    are. A float32 record (the reader's default) no longer holds the file's decimals: each of its
    values is taken as the shortest decimal that rounds to it, which restores KITTI's 2-decimal
    numbers (float32 0.15 would otherwise exceed the truncation limit 0.15 and move a box to a
    harder difficulty).

    Args:
        labels: one frame's records, class names in any case.
        detections: True when the records are detections (each needs a score).

    Returns:
        The frame's records with canonical class names.

    Raises:
        FormatError: an unknown class name, a detection without a score, ground truth with one,
            or a `DontCare` detection, naming the file and the line.
    """
    names = [canonical_type(str(name)) for name in labels.types]
    unknown = next((i for i, name in enumerate(names) if name is None), None)
    if unknown is not None:
        raise FormatError(
            f"{labels.where(unknown)}: unknown class name {str(labels.types[unknown])!r} "
            f"(KITTI types: {', '.join(KITTI_TYPES)})"
        )
    scored = labels.has_score
    wrong = np.flatnonzero(~scored if detections else scored)
    if wrong.size:
        problem = (
            "a detection needs its score as the 16th field"
            if detections
            else "ground truth has no score field"
        )
        raise FormatError(f"{labels.where(int(wrong[0]))}: {problem}")
    if detections and labels.dont_care.any():
        i = int(np.flatnonzero(labels.dont_care)[0])
        raise FormatError(f"{labels.where(i)}: DontCare is not a detection class")
    source = str(labels.path) if labels.path is not None else "<labels>"
    return KittiEvalLabels(
        name=np.asarray(names, dtype=str),
        truncated=_float64(labels.truncated),
        occluded=np.asarray(labels.occluded),
        alpha=_float64(labels.alpha),
        bbox=_float64(labels.bbox2d),
        dimensions=_float64(labels.dims_hwl),
        location=_float64(labels.location),
        rotation_y=_float64(labels.rotation_y),
        score=_float64(labels.score) if detections else None,
        source=source,
    )


def _float64(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == np.float32:
        # float32 has lost the file's decimals; numpy prints the shortest decimal that rounds to
        # each value, which is what a KITTI file held.
        return array.astype(str).astype(np.float64)
    return array.astype(np.float64)
