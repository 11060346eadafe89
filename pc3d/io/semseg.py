"""Point-wise semantic labels: SemanticKITTI, S3DIS and ScanNet files and their class maps.

Files, as the datasets (and MMDetection3D's converters) store them:

- SemanticKITTI: ``sequences/XX/velodyne/NNNNNN.bin`` (float32 x, y, z, remission) and
  ``sequences/XX/labels/NNNNNN.label``: one little-endian uint32 per point, the semantic id in
  the low 16 bits and the instance id in the high 16 bits. Raw ids go to the 19 training classes
  through the official ``learning_map`` of ``semantic-kitti.yaml`` (:data:`SEMANTICKITTI_LABEL_MAP`;
  "unlabeled", "outlier", "other-structure" and "other-object" are ignored).
- S3DIS and ScanNet (MMDetection3D's ``points/*.bin`` and ``semantic_mask/*.bin``): float32 x, y,
  z, r, g, b per point and one int64 semantic id per point. S3DIS ids are its 13 classes
  directly; ScanNet ids are NYU40 ids (0 = unannotated), of which 20 are trained
  (:data:`SCANNET_LABEL_MAP`) and the others ignored.

A label map turns raw ids into class indices ``0 .. K-1`` or ``ignore_index`` (-1). Every check
names the file: a label file whose length differs from its scan's point count, a raw id outside
the map's range, an id the map does not know (a file of another dataset or label version), and
class names that do not match the map's.

Per-point label outputs (what ``pc3d infer`` writes for a segmentation model, and what a viewer
reads to colour a cloud by class): :func:`write_point_labels` / :func:`read_point_labels`, as
``.npy`` (int64 class indices) or ``.label`` (uint32 per point, SemanticKITTI's layout).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pc3d.errors import FormatError
from pc3d.io.atomic import atomic_write_bytes
from pc3d.io.points import NanPolicy, read_point_file

__all__ = [
    "LABEL_SUFFIXES",
    "S3DIS_CLASSES",
    "S3DIS_LABEL_MAP",
    "SCANNET_CLASSES",
    "SCANNET_LABEL_MAP",
    "SCANNET_VALID_IDS",
    "SEMANTICKITTI_CLASSES",
    "SEMANTICKITTI_LABEL_MAP",
    "SEMANTICKITTI_LEARNING_MAP",
    "SEMANTICKITTI_LEARNING_MAP_INV",
    "LabelMap",
    "raw_ids_for",
    "read_indoor_points",
    "read_point_labels",
    "read_semantic_mask",
    "read_semantickitti_labels",
    "read_semantickitti_scan",
    "write_point_labels",
]

#: SemanticKITTI's 19 training classes, in ``learning_map`` order (class index = learning id - 1).
SEMANTICKITTI_CLASSES: tuple[str, ...] = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist",
    "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk",
    "terrain", "pole", "traffic-sign",
)  # fmt: skip

#: ``learning_map`` of the official ``semantic-kitti.yaml``: raw semantic id -> learning id
#: (0 = unlabeled, 1..19 = the classes above); moving objects join their static class.
SEMANTICKITTI_LEARNING_MAP: dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10,
    48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0,
    252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}  # fmt: skip

#: ``learning_map_inv`` of ``semantic-kitti.yaml``: learning id -> raw id (for writing ``.label`` files).
SEMANTICKITTI_LEARNING_MAP_INV: dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 31, 8: 32, 9: 40, 10: 44, 11: 48, 12: 49,
    13: 50, 14: 51, 15: 70, 16: 71, 17: 72, 18: 80, 19: 81,
}  # fmt: skip

#: S3DIS's 13 classes (semantic ids 0..12).
S3DIS_CLASSES: tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa",
    "bookcase", "board", "clutter",
)  # fmt: skip

#: ScanNet's 20 benchmark classes and the NYU40 ids they come from (MMDetection3D's order).
SCANNET_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "showercurtrain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip
SCANNET_VALID_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


@dataclass(frozen=True)
class LabelMap:
    """Raw label ids -> class indices ``0 .. K-1`` or ``ignore_index``.

    Args:
        name: what the map is, for messages (``"the SemanticKITTI learning map"``).
        class_names: the K classes.
        mapping: raw id -> class index or ``ignore_index``.
        max_raw: raw ids must lie in ``0 .. max_raw``; larger or negative ones are out of range.
        ignore_index: the index of ignored points.

    Raises:
        FormatError: a mapping target outside ``0 .. K-1`` that is not ``ignore_index``, or a
            raw id outside ``0 .. max_raw``.
    """

    name: str
    class_names: tuple[str, ...]
    mapping: Mapping[int, int]
    max_raw: int
    ignore_index: int = -1
    lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.class_names)
        for raw, target in self.mapping.items():
            if not 0 <= int(raw) <= self.max_raw:
                raise FormatError(f"{self.name}: raw id {raw} is outside 0..{self.max_raw}")
            if target != self.ignore_index and not 0 <= target < k:
                raise FormatError(
                    f"{self.name}: raw id {raw} maps to class {target}, but the map has {k} classes "
                    f"(0..{k - 1}) and ignores {self.ignore_index}: the class map does not match its classes"
                )
        lut = np.full(self.max_raw + 1, np.iinfo(np.int64).min, dtype=np.int64)  # min: not in the map
        lut[np.fromiter(self.mapping.keys(), dtype=np.int64)] = np.fromiter(
            self.mapping.values(), dtype=np.int64
        )
        object.__setattr__(self, "lut", lut)

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.class_names)

    def apply(self, raw: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
        """Class indices ``int64[N]`` of raw ids ``int[N]`` read from ``path``.

        Raises:
            FormatError: ids outside ``0 .. max_raw`` (out of range) or unknown to the map,
                naming ``path``, the ids and how many points hold them.
        """
        raw = np.asarray(raw).astype(np.int64, copy=False)
        outside = (raw < 0) | (raw > self.max_raw)
        if outside.any():
            raise FormatError(
                f"{path}: labels out of range: {_describe(raw[outside])}; {self.name} takes ids 0..{self.max_raw}"
            )
        mapped = self.lut[raw]
        unknown = mapped == np.iinfo(np.int64).min
        if unknown.any():
            raise FormatError(
                f"{path}: label ids {_describe(raw[unknown])} are not in {self.name} (known ids: "
                f"{', '.join(map(str, sorted(self.mapping)))}); the file and the class map do not match"
            )
        return mapped

    def check_class_names(self, class_names: Sequence[str], what: str) -> None:
        """Raise unless ``class_names`` are this map's classes, in its order.

        Raises:
            FormatError: naming ``what`` (e.g. a config key), both lists and the first difference.
        """
        given = tuple(str(name) for name in class_names)
        if given == self.class_names:
            return
        first = next(
            (i for i, (a, b) in enumerate(zip(given, self.class_names)) if a != b),
            min(len(given), self.num_classes),
        )
        raise FormatError(
            f"{what}: class names {list(given)} do not match the {self.num_classes} classes of {self.name} "
            f"{list(self.class_names)} (first difference at index {first}): mismatched class maps"
        )


def _describe(values: np.ndarray, limit: int = 8) -> str:
    ids, counts = np.unique(values, return_counts=True)
    text = ", ".join(
        f"{int(i)} ({int(c)} point{'s' if c != 1 else ''})" for i, c in zip(ids[:limit], counts[:limit])
    )
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


#: SemanticKITTI raw ids -> the 19 classes (learning id - 1), "unlabeled" (learning id 0) ignored.
SEMANTICKITTI_LABEL_MAP = LabelMap(
    "the SemanticKITTI learning map",
    SEMANTICKITTI_CLASSES,
    {raw: learning - 1 for raw, learning in SEMANTICKITTI_LEARNING_MAP.items()},
    max_raw=max(SEMANTICKITTI_LEARNING_MAP),
)

#: S3DIS ids are the class indices.
S3DIS_LABEL_MAP = LabelMap(
    "the S3DIS class map", S3DIS_CLASSES, {i: i for i in range(len(S3DIS_CLASSES))}, max_raw=12
)

#: ScanNet NYU40 ids (0..40) -> the 20 benchmark classes; the other ids are ignored.
SCANNET_LABEL_MAP = LabelMap(
    "the ScanNet NYU40 class map",
    SCANNET_CLASSES,
    {raw: (SCANNET_VALID_IDS.index(raw) if raw in SCANNET_VALID_IDS else -1) for raw in range(41)},
    max_raw=40,
)


def _read_fixed(path: str | os.PathLike[str], dtype: str, what: str, num_points: int | None) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    size = path.stat().st_size
    itemsize = np.dtype(dtype).itemsize
    if size % itemsize:
        raise FormatError(f"{path}: {size} bytes is not a whole number of {itemsize}-byte {what} entries")
    values = np.fromfile(path, dtype=dtype)
    if num_points is not None and len(values) != num_points:
        hint = ""
        if num_points and size == num_points * itemsize // 2:
            hint = f"; its size fits {num_points} values of {itemsize // 2} bytes: {what} files hold {np.dtype(dtype).name} per point"
        raise FormatError(
            f"{path}: holds {len(values)} {what} entries but its point cloud has {num_points} points "
            f"(label files need one entry per point){hint}"
        )
    return values


def read_semantickitti_scan(path: str | os.PathLike[str], nan_policy: NanPolicy = "raise") -> np.ndarray:
    """``float32[N, 4]`` x, y, z, remission of a SemanticKITTI (KITTI velodyne) ``.bin`` scan.

    Args:
        path: the scan.
        nan_policy: for non-finite coordinates (see :func:`pc3d.io.points.read_point_file`;
            ``"keep"`` leaves them for a caller that drops the labels of the same points).

    Raises:
        FormatError: a size that is not a multiple of 16 bytes or non-finite coordinates (names the file).
        FileNotFoundError: no such file.
    """
    return read_point_file(path, num_features=4, nan_policy=nan_policy).array.astype(np.float32, copy=False)


def read_semantickitti_labels(
    path: str | os.PathLike[str], num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Raw semantic and instance ids of a SemanticKITTI ``.label`` file.

    Args:
        path: the ``.label`` file (uint32 per point, little-endian).
        num_points: the scan's point count, checked against the file's length.

    Returns:
        ``(semantic int64[N], instance int64[N])``: the low and high 16 bits.

    Raises:
        FormatError: a size that is not a multiple of 4 bytes, or a length other than ``num_points``.
        FileNotFoundError: no such file.
    """
    values = _read_fixed(path, "<u4", "label", num_points).astype(np.int64)
    return values & 0xFFFF, values >> 16


def read_indoor_points(path: str | os.PathLike[str], nan_policy: NanPolicy = "raise") -> np.ndarray:
    """``float32[N, 6]`` x, y, z, r, g, b of an S3DIS/ScanNet ``points/*.bin`` file (colour 0..255).

    Args:
        path: the scene's points.
        nan_policy: as for :func:`read_semantickitti_scan`.

    Raises:
        FormatError: a size that is not a multiple of 24 bytes or non-finite coordinates.
        FileNotFoundError: no such file.
    """
    return read_point_file(path, num_features=6, nan_policy=nan_policy).array.astype(np.float32, copy=False)


def read_semantic_mask(path: str | os.PathLike[str], num_points: int | None = None) -> np.ndarray:
    """Raw semantic ids ``int64[N]`` of an S3DIS/ScanNet ``semantic_mask/*.bin`` file (int64 per point).

    Raises:
        FormatError: a size that is not a multiple of 8 bytes, or a length other than ``num_points``.
        FileNotFoundError: no such file.
    """
    return _read_fixed(path, "<i8", "semantic mask", num_points).astype(np.int64, copy=False)


# -- per-point label outputs (inference) --------------------------------------------------------

#: Suffixes of per-point label files: int64 class indices (.npy) or uint32 per point (.label).
LABEL_SUFFIXES = (".npy", ".label")


def raw_ids_for(class_names: Sequence[str]) -> list[int] | None:
    """Raw label ids to write in ``.label`` files for these classes: SemanticKITTI's
    ``learning_map_inv`` when they are its 19 classes, else None (class indices are written)."""
    if tuple(class_names) == SEMANTICKITTI_CLASSES:
        return [SEMANTICKITTI_LEARNING_MAP_INV[i + 1] for i in range(len(SEMANTICKITTI_CLASSES))]
    return None


def write_point_labels(
    path: str | os.PathLike[str], labels: np.ndarray, raw_ids: Sequence[int] | None = None
) -> Path:
    """Write per-point class indices, atomically.

    Args:
        path: ``.npy`` (int64 class indices) or ``.label`` (uint32 per point).
        labels: ``int[N]`` class indices (>= 0), or -1 for a point without a label (one the
            model did not read): -1 in ``.npy``, raw id 0 (SemanticKITTI's ``unlabeled``) in
            ``.label``.
        raw_ids: for ``.label``: the raw id written for each class (e.g. :func:`raw_ids_for`).

    Returns:
        The path written.

    Raises:
        FormatError: another suffix, labels below -1, a class without a raw id, or -1 in a
            ``.label`` file of class indices (no raw ids: nothing marks "no label" there).
    """
    path = Path(path)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if path.suffix not in LABEL_SUFFIXES:
        raise FormatError(f"{path}: label outputs end in {' or '.join(LABEL_SUFFIXES)}")
    if labels.size and labels.min() < -1:
        raise FormatError(
            f"{path}: labels must be class indices >= 0 (or -1: no label), got {int(labels.min())}"
        )
    if path.suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, labels, allow_pickle=False)
        return atomic_write_bytes(path, buffer.getvalue())
    unlabelled = labels < 0
    values = labels
    if raw_ids is not None:
        if labels.size and labels.max() >= len(raw_ids):
            raise FormatError(f"{path}: class {int(labels.max())} has no raw id ({len(raw_ids)} given)")
        values = np.where(unlabelled, 0, np.asarray(raw_ids, dtype=np.int64)[np.maximum(labels, 0)])
    elif unlabelled.any():
        raise FormatError(
            f"{path}: {int(unlabelled.sum())} points have no label (-1), which a .label file of class "
            "indices cannot hold (0 is a class): write .npy"
        )
    return atomic_write_bytes(path, values.astype("<u4").tobytes())


def read_point_labels(path: str | os.PathLike[str], num_points: int | None = None) -> np.ndarray:
    """Read a per-point label file written by :func:`write_point_labels` (or a SemanticKITTI one).

    Args:
        path: ``.npy`` (integers) or ``.label`` (uint32; the low 16 bits are the semantic id).
        num_points: the cloud's point count, checked against the file.

    Returns:
        ``int64[N]``.

    Raises:
        FormatError: another suffix, a non-integer or non-1-D array, or the wrong length
            (naming the file).
    """
    path = Path(path)
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise FormatError(
                f"{path}: expected a 1-D integer array of labels, got {values.dtype} {values.shape}"
            )
        values = values.astype(np.int64)
    elif path.suffix == ".label":
        values, _ = read_semantickitti_labels(path)
    else:
        raise FormatError(f"{path}: label files end in {' or '.join(LABEL_SUFFIXES)}")
    if num_points is not None and len(values) != num_points:
        raise FormatError(f"{path}: holds {len(values)} labels but the point cloud has {num_points} points")
    return values
