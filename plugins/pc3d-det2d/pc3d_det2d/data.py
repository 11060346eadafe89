"""COCO-format detection data: a checked loader for ``annotations/*.json`` + ``images/``, the
data set (its transforms live in :mod:`pc3d_det2d.transforms` and are re-exported here) and the
batch collate.

Layout (the COCO one)::

    ROOT/annotations/train.json     # {"images": [...], "annotations": [...], "categories": [...]}
    ROOT/images/<file_name>         # file_name as written in the json's images[i]

A sample (``dataset[i]``) is a mapping::

    image       Tensor[3, H, W] float32 (after the transforms; H, W padded per the Pad transform)
    gt_boxes    Tensor[M, 4] x1, y1, x2, y2 pixels of the transformed image (crowd boxes left out)
    gt_labels   Long[M] contiguous labels 0..K-1 (the categories sorted by id)
    image_size  Long[2] (h, w) of the resized image before padding
    meta        dict: image_id, ori_shape (h, w), scale_factor (sx, sy), flip, annotations
                (the image's raw COCO annotations, for the metric), cat_ids (label -> category id)

:meth:`CocoDetection.collate` pads the images of a batch to one size and returns ``images``
``Tensor[B, 3, H, W]``, ``gt_boxes`` / ``gt_labels`` lists, ``image_sizes`` ``Long[B, 2]`` and
``metas``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.errors import FormatError, MissingDependencyError, did_you_mean
from pc3d.io.images import read_image
from pc3d.nn import clip_boxes
from pc3d_det2d.transforms import DetNormalize, DetPad, DetRandomFlip, DetResize

__all__ = [
    "CocoDetection",
    "DetNormalize",
    "DetPad",
    "DetRandomFlip",
    "DetResize",
    "collate_detection",
    "load_coco_json",
]


# ------------------------------------------------------------------------------------ coco json
def _where(ann_file: Path, what: str) -> str:
    return f"{ann_file}: {what}"


def load_coco_json(ann_file: str | Path, image_dir: str | Path | None = None) -> dict[str, Any]:
    """Read and check a COCO detection json.

    Image and category ids are integers, each listed once; a category has a ``name``, each name
    used once. Every annotation must name an existing image and category and carry a ``bbox`` of
    four finite numbers ``[x, y, w, h]`` with ``w > 0`` and ``h > 0``, inside its image when the
    image records ``width`` and ``height`` (partly outside: clipped to it, with a warning beyond
    a pixel); with ``image_dir``, every image file must exist.

    Args:
        ann_file: the annotation json.
        image_dir: the folder the images' ``file_name`` are relative to; None: not checked.

    Returns:
        The json's data.

    Raises:
        FormatError: a violation, naming the file and the annotation id (or image id / file name).
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FormatError(f"{ann_file}: COCO annotation file not found")
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(_where(ann_file, f"not valid JSON ({err})")) from err
    if not isinstance(data, Mapping):
        raise FormatError(_where(ann_file, "a COCO file must be a JSON object"))
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise FormatError(
                _where(
                    ann_file,
                    f"missing list '{key}' (a COCO detection file has images, annotations, categories)",
                )
            )
    images: dict[Any, Mapping[str, Any]] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, Mapping) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise FormatError(_where(ann_file, f"images[{i}] needs 'id' and 'file_name'"))
        if not _is_int(img["id"]):
            raise FormatError(
                _where(
                    ann_file, f"images[{i}] ({img['file_name']}): 'id' must be an integer, got {img['id']!r}"
                )
            )
        if img["id"] in images:
            raise FormatError(_where(ann_file, f"image id {img['id']} appears twice"))
        images[img["id"]] = img
    cat_ids: set[int] = set()
    names: dict[str, int] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, Mapping) or not _is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise FormatError(
                _where(ann_file, f"categories[{i}] needs an integer 'id' and a 'name', got {cat!r}")
            )
        if cat["id"] in cat_ids:
            raise FormatError(_where(ann_file, f"category id {cat['id']} appears twice"))
        if cat["name"] in names:
            raise FormatError(
                _where(
                    ann_file,
                    f"category name {cat['name']!r} is used by ids {names[cat['name']]} and {cat['id']}",
                )
            )
        cat_ids.add(cat["id"])
        names[cat["name"]] = cat["id"]
    _check_annotations(ann_file, data["annotations"], images, cat_ids)
    if image_dir is not None:
        folder = Path(image_dir)
        for img in images.values():
            path = folder / img["file_name"]
            if not path.is_file():
                users = [a["id"] for a in data["annotations"] if a["image_id"] == img["id"]]
                raise FormatError(
                    _where(
                        ann_file,
                        f"image id {img['id']}: file {path} does not exist"
                        + (f" (used by annotation ids {users[:10]})" if users else ""),
                    )
                )
    return dict(data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_annotations(
    ann_file: Path, annotations: list[Any], images: Mapping[Any, Any], cat_ids: set[int]
) -> None:
    """Each annotation: a unique id, a known image and category, a ``bbox`` of four finite
    numbers with positive width and height, inside its image when the image records its
    ``width`` and ``height`` (a box partly outside is clipped to it, with a warning beyond a
    pixel; one wholly outside is an error) (see :func:`load_coco_json`)."""
    seen: set[Any] = set()
    clipped: list[Any] = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, Mapping) or "id" not in ann:
            raise FormatError(_where(ann_file, f"annotations[{i}] has no 'id'"))
        aid = ann["id"]
        label = f"annotation id {aid}"
        if aid in seen:
            raise FormatError(_where(ann_file, f"{label} appears twice"))
        seen.add(aid)
        if ann.get("image_id") not in images:
            raise FormatError(
                _where(
                    ann_file, f"{label} refers to image id {ann.get('image_id')!r}, which is not in 'images'"
                )
            )
        if ann.get("category_id") not in cat_ids:
            raise FormatError(
                _where(ann_file, f"{label} has category_id {ann.get('category_id')!r}, not in 'categories'")
            )
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise FormatError(_where(ann_file, f"{label}: bbox must be [x, y, width, height], got {bbox!r}"))
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox
        ):
            raise FormatError(_where(ann_file, f"{label}: bbox values must be finite numbers, got {bbox!r}"))
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise FormatError(_where(ann_file, f"{label}: bbox width and height must be > 0, got {bbox!r}"))
        img = images[ann["image_id"]]
        width, height = img.get("width"), img.get("height")
        if _is_int(width) and _is_int(height):
            x1, y1 = max(bbox[0], 0), max(bbox[1], 0)
            x2, y2 = min(bbox[0] + bbox[2], width), min(bbox[1] + bbox[3], height)
            if x2 <= x1 or y2 <= y1:
                raise FormatError(
                    _where(
                        ann_file,
                        f"{label}: bbox {bbox} lies outside its image ({width} x {height}, image id {img['id']})",
                    )
                )
            if [x1, y1, x2 - x1, y2 - y1] != bbox:
                if max(-bbox[0], -bbox[1], bbox[0] + bbox[2] - width, bbox[1] + bbox[3] - height) > 1:
                    clipped.append(aid)
                ann["bbox"] = [x1, y1, x2 - x1, y2 - y1]  # training targets and the metric's truth alike
    if clipped:
        warnings.warn(
            f"{ann_file}: {len(clipped)} boxes extend more than a pixel past their image and were clipped "
            f"to it (annotation ids {clipped[:10]}{' ...' if len(clipped) > 10 else ''})",
            stacklevel=3,
        )


def _coco_index(data: dict[str, Any]) -> Any:
    try:
        from pycocotools.coco import COCO
    except ImportError as err:  # pragma: no cover - declared dependency
        raise MissingDependencyError("COCO datasets need pycocotools: pip install pycocotools") from err
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


# -------------------------------------------------------------------------------------- dataset
class CocoDetection:
    """A COCO-format detection data set (see the module docstring).

    Args:
        root: the folder holding ``annotations/`` and ``images/``.
        ann_file: the annotation json, relative to ``root`` (or absolute).
        image_dir: the image folder, relative to ``root``.
        transforms: the pipeline (``DetResize``, ``DetRandomFlip``, ``DetNormalize``,
            ``DetPad``...), applied in order.
        generate: ``{num_images, seed, image_size?, max_objects?, min_size?, max_size?}``: write
            the synthetic shapes set (:func:`pc3d_det2d.shapes.make_shapes_coco`) to ``root`` /
            ``ann_file`` first, unless the same set is already there (so a config works without
            any download).
        filter_empty: drop images without annotations (for training).
        class_names: the model's classes, in label order (the config's ``class_names``): labels
            follow this list, matched to the json's categories by name, so a training and a
            validation file whose category lists differ (ids, order, or a category missing from
            one) label alike. Annotations of categories not listed are dropped, and a listed name
            no category has is a class without ground truth here; each with a warning. Default:
            every category of the json, sorted by id.

    Raises:
        FormatError: a bad annotation file, a missing image, a transform that is not callable,
            or unknown ``generate`` keys.
    """

    def __init__(
        self,
        root: str,
        ann_file: str = "annotations/train.json",
        image_dir: str = "images",
        transforms: list[Any] | None = None,
        generate: dict[str, Any] | None = None,
        filter_empty: bool = False,
        class_names: list[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.ann_file = Path(ann_file) if Path(ann_file).is_absolute() else self.root / ann_file
        self.image_dir = self.root / image_dir
        if generate is not None:
            from pc3d_det2d.shapes import make_shapes_coco

            allowed = {"num_images", "seed", "image_size", "max_objects", "min_size", "max_size"}
            unknown = set(generate) - allowed
            if unknown or "num_images" not in generate:
                raise FormatError(
                    f"generate needs num_images (and may have {sorted(allowed)}), got keys {sorted(generate)}"
                )
            split = self.ann_file.stem
            make_shapes_coco(self.root, split=split, **generate)
        self.transforms = list(transforms or [])
        for t in self.transforms:
            if not callable(t):
                raise FormatError(f"transform {t!r} is not callable")
        data = load_coco_json(self.ann_file, self.image_dir)
        self.coco = _coco_index(data)
        self.cat_ids, self.class_names = self._labels(class_names)
        self.label_of = {c: i for i, c in enumerate(self.cat_ids)}
        ids = sorted(self.coco.getImgIds())
        if not any(a["category_id"] in self.label_of for a in data["annotations"]):
            warnings.warn(
                f"{self.ann_file}: no annotation of the classes {self.class_names}: nothing to learn "
                "or to measure (COCO AP is -1 without ground truth)",
                stacklevel=2,
            )
        if filter_empty:
            ids = [i for i in ids if self._annotations(i, crowd=False)]
            if not ids:
                raise FormatError(
                    f"{self.ann_file}: filter_empty dropped every image: none has an annotation of "
                    f"the classes {self.class_names}"
                )
        self.image_ids: list[int] = ids

    def _labels(self, class_names: list[str] | None) -> tuple[list[int], list[str]]:
        """Category id and name of each label (see ``class_names``)."""
        cats = self.coco.cats
        if class_names is None:
            ids = sorted(cats)
            return ids, [cats[c]["name"] for c in ids]
        if len(set(class_names)) != len(class_names):
            raise FormatError(f"CocoDetection: class_names lists a name twice: {class_names}")
        by_name = {cat["name"]: cid for cid, cat in cats.items()}
        missing = [n for n in class_names if n not in by_name]
        if missing:
            hints = "".join(did_you_mean(n, by_name) for n in missing)
            warnings.warn(
                f"{self.ann_file}: no category named {', '.join(map(repr, missing))}{hints}: no ground "
                f"truth for {'it' if len(missing) == 1 else 'them'} here (categories: {', '.join(by_name)})",
                stacklevel=3,
            )
        dropped = [n for n in by_name if n not in class_names]
        counts = {n: len(self.coco.getAnnIds(catIds=[by_name[n]])) for n in dropped}
        if any(counts.values()):
            listed = ", ".join(f"{n} ({c})" for n, c in counts.items() if c)
            warnings.warn(
                f"{self.ann_file}: annotations of categories not in class_names are left out: {listed}",
                stacklevel=3,
            )
        # A class the json has no category for gets an id no category uses (no ground truth).
        spare = iter(range(max(cats, default=0) + 1, max(cats, default=0) + 1 + len(class_names)))
        return [by_name[n] if n in by_name else next(spare) for n in class_names], list(class_names)

    def _annotations(self, image_id: int, crowd: bool = True) -> list[dict[str, Any]]:
        """The image's annotations of the dataset's classes (crowd ones too unless ``crowd`` is False)."""
        return [
            a
            for a in self.coco.imgToAnns.get(image_id, [])
            if a["category_id"] in self.label_of and (crowd or not a.get("iscrowd", 0))
        ]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        path = self.image_dir / info["file_name"]
        image = read_image(path, "RGB", f"image id {image_id} of {self.ann_file}")
        size = (info.get("height"), info.get("width"))
        if all(_is_int(v) for v in size) and tuple(image.shape[:2]) != size:
            raise FormatError(
                f"{path} (image id {image_id} of {self.ann_file}): the image is {image.shape[1]} x "
                f"{image.shape[0]} but the json says {size[1]} x {size[0]} (width x height): its boxes "
                "would be in other pixels (an EXIF-rotated photo?)"
            )
        anns = self._annotations(image_id)
        boxes = [a["bbox"] for a in anns if not a.get("iscrowd", 0)]
        labels = [self.label_of[a["category_id"]] for a in anns if not a.get("iscrowd", 0)]
        xywh = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return prepare_sample(
            image, xyxy, labels, self.transforms, image_id, [dict(a) for a in anns], self.cat_ids
        )

    @staticmethod
    def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The batch of ``samples`` (see :func:`collate_detection`)."""
        return collate_detection(samples)


def prepare_sample(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[int],
    transforms: Sequence[Any],
    image_id: Any = 0,
    annotations: Sequence[Mapping[str, Any]] = (),
    cat_ids: Sequence[int] = (),
) -> dict[str, Any]:
    """One sample as :class:`CocoDetection` gives it: ``image`` (``uint8[H, W, 3]``) and its
    ``boxes`` (``float32[M, 4]`` x1, y1, x2, y2) through ``transforms``, with the ``meta`` that maps
    detections back to the original pixels (:func:`boxes_to_original`)."""
    results: dict[str, Any] = {
        "image": image,
        "gt_boxes": boxes,
        "meta": {
            "image_id": image_id,
            "ori_shape": (int(image.shape[0]), int(image.shape[1])),
            "scale_factor": (1.0, 1.0),
            "flip": False,
            "annotations": list(annotations),
            "cat_ids": list(cat_ids),
        },
    }
    for transform in transforms:
        results = transform(results)
    meta = results["meta"]
    h, w = meta["ori_shape"]
    sx, sy = meta["scale_factor"]
    meta["img_shape"] = (int(round(h * sy)), int(round(w * sx)))
    pixels = results["image"]
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float(),
        "gt_boxes": torch.from_numpy(results["gt_boxes"].astype(np.float32)).reshape(-1, 4),
        "gt_labels": torch.as_tensor(list(labels), dtype=torch.long),
        "image_size": torch.tensor(meta["img_shape"], dtype=torch.long),
        "meta": meta,
    }


def collate_detection(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad images to the batch's largest ``H, W`` (zeros at the bottom/right) and list the rest.

    Args:
        samples: :class:`CocoDetection` samples.

    Returns:
        ``images`` ``Tensor[B, 3, H, W]``, ``gt_boxes`` ``list[Tensor[M_i, 4]]``, ``gt_labels``
        ``list[Long[M_i]]``, ``image_sizes`` ``Long[B, 2]``, ``metas`` ``list[dict]``.

    Raises:
        FormatError: an empty batch.
    """
    if not samples:
        raise FormatError("collate_detection got an empty batch")
    height = max(int(s["image"].shape[1]) for s in samples)
    width = max(int(s["image"].shape[2]) for s in samples)
    images = samples[0]["image"].new_zeros((len(samples), samples[0]["image"].shape[0], height, width))
    for i, s in enumerate(samples):
        images[i, :, : s["image"].shape[1], : s["image"].shape[2]] = s["image"]
    return {
        "images": images,
        "gt_boxes": [s["gt_boxes"] for s in samples],
        "gt_labels": [s["gt_labels"] for s in samples],
        "image_sizes": torch.stack([s["image_size"] for s in samples]),
        "metas": [s["meta"] for s in samples],
    }


def boxes_to_original(boxes: Tensor, meta: Mapping[str, Any]) -> Tensor:
    """Map boxes back to the original image: undo the flip, then the resize; clip.

    Args:
        boxes: ``Tensor[N, 4]`` pixel ``x1, y1, x2, y2`` in the network's input image.
        meta: the sample's ``meta`` (``flip``, ``img_shape``, ``scale_factor``, ``ori_shape``).

    Returns:
        ``Tensor[N, 4]`` float32 on the CPU, in the original image's pixels.
    """
    boxes = boxes.detach().float().cpu()
    if meta.get("flip"):
        w = float(meta["img_shape"][1])
        boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], dim=1)
    sx, sy = meta["scale_factor"]
    boxes = boxes / torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype)
    return clip_boxes(boxes, meta["ori_shape"])
