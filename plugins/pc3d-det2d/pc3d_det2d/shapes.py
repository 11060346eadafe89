"""A synthetic COCO-format detection set: filled rectangles, ellipses and triangles (three
classes) in random colours on textured noise backgrounds, deterministic by seed.

``make_shapes_coco(root, split="train", num_images=300, seed=0)`` writes
``root/annotations/<split>.json`` and ``root/images/<split>/<index>.png``. The json's ``info``
records the parameters; calling again with the same parameters reuses the files (so a config
with ``generate:`` costs nothing the second time), other parameters rewrite them.

Boxes are the exact pixel extent of each shape (shapes never overlap, so a box is never
partly hidden). Command line: ``pc3d det2d shapes ROOT --split train --num-images 300``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pc3d.errors import FormatError
from pc3d.io.jsonio import write_json

__all__ = ["CLASSES", "make_shapes_coco", "render_shapes_image"]

CLASSES: tuple[str, ...] = ("rectangle", "ellipse", "triangle")
_PALETTE = np.array(
    [[220, 40, 40], [40, 180, 60], [50, 80, 220], [235, 200, 30], [200, 60, 200], [30, 200, 210]],
    dtype=np.int64,
)
_VERSION = 1


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    # Low-frequency colour blobs (a coarse random grid upsampled) plus per-pixel grain: texture
    # that a detector must learn to ignore, unlike a flat colour.
    cells = int(rng.integers(3, 7))
    coarse = rng.integers(60, 200, size=(cells, cells, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.int16)
    grain = rng.integers(-25, 26, size=(size, size, 3), dtype=np.int16)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def render_shapes_image(
    rng: np.random.Generator, image_size: int, max_objects: int, min_size: int, max_size: int
) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """Draw one image of the shapes set.

    Args:
        rng: the generator every random choice is drawn from.
        image_size: the image side ``S`` in pixels.
        max_objects: the most shapes per image (at least one is drawn).
        min_size: the smallest box side in pixels.
        max_size: the largest box side in pixels.

    Returns:
        The image ``uint8[S, S, 3]`` and its objects ``[(class index, [x, y, w, h])]``.
    """
    image = Image.fromarray(_background(rng, image_size))
    draw = ImageDraw.Draw(image)
    count = int(rng.integers(1, max_objects + 1))
    placed: list[tuple[int, int, int, int]] = []
    objects: list[tuple[int, list[float]]] = []
    for _ in range(count * 10):  # rejection sampling for non-overlapping boxes
        if len(objects) == count:
            break
        w, h = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
        x0 = int(rng.integers(0, image_size - w + 1))
        y0 = int(rng.integers(0, image_size - h + 1))
        x1, y1 = x0 + w, y0 + h
        if any(
            x0 < bx1 + 2 and bx0 < x1 + 2 and y0 < by1 + 2 and by0 < y1 + 2 for bx0, by0, bx1, by1 in placed
        ):
            continue
        cls = int(rng.integers(0, len(CLASSES)))
        colour = tuple(int(c) for c in _PALETTE[int(rng.integers(0, len(_PALETTE)))])
        # PIL's rectangle/ellipse include their end pixel: (x1 - 1, y1 - 1) makes the drawn
        # extent exactly [x0, x1) x [y0, y1), i.e. the box.
        if cls == 0:
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=colour)
        elif cls == 1:
            draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=colour)
        else:
            apex = x0 + int(rng.integers(0, w))
            if rng.random() < 0.5:  # apex up or down
                points = [(apex, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)]
            else:
                points = [(apex, y1 - 1), (x0, y0), (x1 - 1, y0)]
            draw.polygon(points, fill=colour)
        placed.append((x0, y0, x1, y1))
        objects.append((cls, [float(x0), float(y0), float(w), float(h)]))
    return np.asarray(image), objects


def make_shapes_coco(
    root: str | os.PathLike[str],
    split: str = "train",
    num_images: int = 300,
    seed: int = 0,
    image_size: int = 128,
    max_objects: int = 4,
    min_size: int = 16,
    max_size: int = 56,
) -> Path:
    """Write the shapes set (see the module docstring).

    Args:
        root: the folder for ``annotations/`` and ``images/``.
        split: the name of the split.
        num_images: how many images.
        seed: seeds every random choice.
        image_size: the image side in pixels.
        max_objects: the most shapes per image.
        min_size: the smallest box side in pixels.
        max_size: the largest box side in pixels.

    Returns:
        The annotation file.

    Raises:
        FormatError: parameters out of range, or an annotation file at ``root/annotations/
            <split>.json`` that this function did not write (a user's own data is never replaced).
    """
    if num_images < 1 or image_size < 8 or max_objects < 1:
        raise FormatError("num_images and max_objects must be >= 1 and image_size >= 8")
    if not 1 <= min_size <= max_size <= image_size:
        raise FormatError(
            f"need 1 <= min_size <= max_size <= image_size, got {min_size}, {max_size}, {image_size}"
        )
    root = Path(root)
    ann_file = root / "annotations" / f"{split}.json"
    params = {
        "generator": "pc3d_det2d.shapes",
        "version": _VERSION,
        "num_images": num_images,
        "seed": seed,
        "image_size": image_size,
        "max_objects": max_objects,
        "min_size": min_size,
        "max_size": max_size,
    }
    recorded = _generated_with(ann_file)
    if recorded == params:
        return ann_file
    if ann_file.exists() and (recorded is None or recorded.get("generator") != params["generator"]):
        raise FormatError(
            f"{ann_file} exists and is not a pc3d shapes set, so it is not replaced: the data set's "
            "`generate:` writes synthetic shapes. For your own COCO data remove `generate:` (a config "
            "based on a shapes config inherits it: give your dataset mapping `_replace_: true`)"
        )
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = _render_split(
        root, split, rng, num_images, image_size, max_objects, min_size, max_size
    )
    data = {
        "info": {"description": "pc3d synthetic shapes", "params": params},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)],
    }
    # Written last and atomically: a json present means its images are complete.
    return write_json(ann_file, data, indent=None)


def _generated_with(ann_file: Path) -> dict[str, Any] | None:
    """The parameters recorded in an existing annotation file (None: no file, a file this module
    did not write, or one that is not JSON)."""
    if not ann_file.is_file():
        return None
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    info = data.get("info") if isinstance(data, dict) else None
    params = info.get("params") if isinstance(info, dict) else None
    return params if isinstance(params, dict) else None


def _render_split(
    root: Path,
    split: str,
    rng: np.random.Generator,
    num_images: int,
    image_size: int,
    max_objects: int,
    min_size: int,
    max_size: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Draw and save ``root/images/<split>/<index>.png``; returns the COCO image and annotation records."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        pixels, objects = render_shapes_image(rng, image_size, max_objects, min_size, max_size)
        name = f"{split}/{index:06d}.png"
        Image.fromarray(pixels).save(root / "images" / name)
        images.append({"id": index + 1, "file_name": name, "height": image_size, "width": image_size})
        for cls, bbox in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": cls + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    return images, annotations
