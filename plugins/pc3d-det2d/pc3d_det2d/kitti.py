"""KITTI object images and their 2D boxes as a COCO-format data set.

KITTI's ``label_2/<frame>.txt`` rows are ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z
ry``; columns 4-7 (0-based) are the 2D box in image pixels. ``DontCare`` rows (regions KITTI does
not label) are left out; the other types become categories with fixed ids (:data:`KITTI_CLASSES`),
so sets converted from different frames agree on ids.

``kitti_to_coco(kitti_root, out_root, frames)`` writes ``out_root/annotations/<split>.json`` and
copies the images to ``out_root/images/<split>/``. Command line: ``pc3d det2d kitti
KITTI_ROOT OUT_ROOT 000001 000004``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pc3d.errors import FormatError
from pc3d.evaluation.kitti_labels import KITTI_TYPES
from pc3d.io.jsonio import write_json
from pc3d.io.kitti import DONT_CARE, read_kitti_labels
from pc3d_det2d.data import CocoDetection

__all__ = ["KITTI_CLASSES", "KittiImageDetection", "kitti_to_coco"]

#: The object types of ``label_2`` files (``DontCare`` is a region, not a class); category ``i + 1``
#: is ``KITTI_CLASSES[i]``.
KITTI_CLASSES: tuple[str, ...] = tuple(t for t in KITTI_TYPES if t != DONT_CARE)


def _read_label(path: Path) -> list[tuple[str, list[float]]]:
    """The objects of a ``label_2`` file (read by :func:`pc3d.io.kitti.read_kitti_labels`, values
    as written) as ``(type, COCO [x, y, w, h])``, ``DontCare`` left out.

    Raises:
        FormatError: a malformed row, an unknown type or an empty 2D box, naming file and line.
    """
    labels = read_kitti_labels(path, dtype=np.float64).objects()
    objects = []
    for index, (kind, (x1, y1, x2, y2)) in enumerate(zip(labels.types.tolist(), labels.bbox2d.tolist())):
        if kind not in KITTI_CLASSES:
            raise FormatError(
                f"{labels.where(index)}: unknown KITTI type {kind!r} (known: {', '.join(KITTI_CLASSES)}, {DONT_CARE})"
            )
        if x2 <= x1 or y2 <= y1:
            raise FormatError(f"{labels.where(index)}: bbox {x1, y1, x2, y2} must have x1 < x2 and y1 < y2")
        objects.append((kind, [x1, y1, x2 - x1, y2 - y1]))
    return objects


def kitti_to_coco(
    kitti_root: str | os.PathLike[str],
    out_root: str | os.PathLike[str],
    frames: Sequence[str],
    split: str = "train",
) -> Path:
    """Convert ``kitti_root/{image_2,label_2}/<frame>`` for each frame (see the module docstring).

    Args:
        kitti_root: the folder holding ``image_2/`` and ``label_2/``.
        out_root: where ``annotations/<split>.json`` and ``images/<split>/`` are written.
        frames: frame names (``"000001"``).
        split: the name of the split.

    Returns:
        The annotation file, written atomically (a reader never sees half a file).

    Raises:
        FormatError: a missing image or label file, or a malformed label row (naming file and
            line).
    """
    kitti_root, out_root = Path(kitti_root), Path(out_root)
    if not kitti_root.is_dir():
        where = "" if kitti_root.is_absolute() else f" (a relative path, resolved against {Path.cwd()})"
        raise FormatError(
            f"kitti_root {kitti_root} is not a folder{where}: give the folder holding image_2/ and label_2/"
        )
    image_dir = out_root / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index, frame in enumerate(frames, start=1):
        source = kitti_root / "image_2" / f"{frame}.png"
        label = kitti_root / "label_2" / f"{frame}.txt"
        for path in (source, label):
            if not path.is_file():
                raise FormatError(f"KITTI frame {frame}: {path} does not exist")
        with Image.open(source) as handle:
            width, height = handle.size
        target = image_dir / source.name
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)
        images.append({"id": index, "file_name": f"{split}/{source.name}", "height": height, "width": width})
        for kind, bbox in _read_label(label):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": KITTI_CLASSES.index(kind) + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    data = {
        "info": {"description": f"KITTI frames {list(frames)} from {kitti_root}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(KITTI_CLASSES)],
    }
    ann_file = out_root / "annotations" / f"{split}.json"
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    return write_json(ann_file, data, indent=None)


class KittiImageDetection(CocoDetection):
    """KITTI frames converted (:func:`kitti_to_coco`) into ``root`` and read as a
    :class:`CocoDetection` (registered dataset ``KittiImageDetection``).

    Args:
        kitti_root: the folder holding ``image_2/`` and ``label_2/``.
        frames: frame names (``"000001"``).
        root: where the COCO-format copy is written and read from.
        split: the name of the split (``annotations/<split>.json``).
        transforms: the pipeline, as for :class:`CocoDetection`.
        filter_empty: drop images without annotations (for training).
        class_names: the model's classes in label order (see :class:`CocoDetection`).
    """

    def __init__(
        self,
        kitti_root: str,
        frames: list[str],
        root: str,
        split: str = "train",
        transforms: list[Any] | None = None,
        filter_empty: bool = False,
        class_names: list[str] | None = None,
    ) -> None:
        kitti_to_coco(kitti_root, root, frames, split)
        super().__init__(
            root=root,
            ann_file=f"annotations/{split}.json",
            transforms=transforms,
            filter_empty=filter_empty,
            class_names=class_names,
        )
