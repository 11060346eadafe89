"""A synthetic 2D semantic-segmentation set: rectangles, ellipses and triangles in random colours
on textured noise backgrounds, with exact per-pixel class masks; deterministic by seed.

Image ``i`` of seed ``S`` depends on ``(S, i)`` only and is drawn when indexed (nothing is
written to disk), so a CPU trains on it with no preparation. The same idea as the det2d plugin's
detection shapes set (which this plugin does not import): shapes may overlap here, the one drawn
last wins, and the mask says so pixel by pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from pc3d.errors import FormatError

__all__ = ["SHAPE_CLASSES", "ShapesSeg", "render_shapes_mask"]

#: Mask classes: 0 is the background.
SHAPE_CLASSES: tuple[str, ...] = ("background", "rectangle", "ellipse", "triangle")
_PALETTE = np.array(
    [[220, 40, 40], [40, 180, 60], [50, 80, 220], [235, 200, 30], [200, 60, 200], [30, 200, 210]],
    dtype=np.int64,
)
_MEAN = np.array([127.5, 127.5, 127.5], dtype=np.float32)
_STD = np.array([64.0, 64.0, 64.0], dtype=np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    # Colour blobs (a coarse random grid upsampled) plus grain: texture the model must ignore.
    cells = int(rng.integers(3, 7))
    coarse = rng.integers(60, 200, size=(cells, cells, 3)).astype(np.uint8)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16
    )
    grain = rng.integers(-25, 26, size=(size, size, 3), dtype=np.int16)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


def render_shapes_mask(
    rng: np.random.Generator, image_size: int, max_objects: int, min_size: int, max_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image and its class mask.

    Args:
        rng: the generator every random choice is drawn from.
        image_size: the side ``S`` in pixels.
        max_objects: the most shapes (at least one is drawn).
        min_size: the smallest shape side in pixels.
        max_size: the largest shape side in pixels.

    Returns:
        ``uint8[S, S, 3]`` image and ``int64[S, S]`` mask (indices into :data:`SHAPE_CLASSES`).
    """
    image = Image.fromarray(_background(rng, image_size))
    mask = Image.new("L", (image_size, image_size), 0)
    draws = (ImageDraw.Draw(image), ImageDraw.Draw(mask))
    for _ in range(int(rng.integers(1, max_objects + 1))):
        w, h = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
        x0, y0 = int(rng.integers(0, image_size - w + 1)), int(rng.integers(0, image_size - h + 1))
        x1, y1 = x0 + w - 1, y0 + h - 1
        cls = int(rng.integers(1, len(SHAPE_CLASSES)))
        colour = tuple(int(c) for c in _PALETTE[int(rng.integers(0, len(_PALETTE)))])
        apex, up = x0 + int(rng.integers(0, w)), bool(rng.random() < 0.5)
        targets: list[tuple[ImageDraw.ImageDraw, float | tuple[int, ...]]] = [
            (draws[0], colour),
            (draws[1], cls),
        ]
        for draw, fill in targets:
            if cls == 1:
                draw.rectangle([x0, y0, x1, y1], fill=fill)
            elif cls == 2:
                draw.ellipse([x0, y0, x1, y1], fill=fill)
            else:
                corners = [(apex, y0), (x0, y1), (x1, y1)] if up else [(apex, y1), (x0, y0), (x1, y0)]
                draw.polygon(corners, fill=fill)
    return np.asarray(image), np.asarray(mask, dtype=np.int64)


class ShapesSeg:
    """The shapes set as a map-style data set of ``{"images": Float[3, S, S], "masks": Long[S, S]}``.

    Images are normalised to about ``[-2, 2]`` (mean 127.5, std 64 per channel). Batches collate
    with torch's default (stacked tensors).

    Args:
        num_images: the size of the set.
        seed: seeds every image (use another seed for a validation set).
        image_size: the side in pixels.
        max_objects: the most shapes per image.
        min_size: the smallest shape side in pixels.
        max_size: the largest shape side in pixels.
        flip: mirror images left-right with probability 0.5 (torch's generator, seeded per
            sample by the engine).

    Raises:
        FormatError: parameters out of range.
    """

    class_names = SHAPE_CLASSES

    def __init__(
        self,
        num_images: int = 200,
        seed: int = 0,
        image_size: int = 64,
        max_objects: int = 3,
        min_size: int = 12,
        max_size: int = 32,
        flip: bool = False,
    ) -> None:
        if num_images < 1 or image_size < 8 or max_objects < 1:
            raise FormatError("ShapesSeg: num_images and max_objects must be >= 1 and image_size >= 8")
        if not 1 <= min_size <= max_size <= image_size:
            raise FormatError(
                f"ShapesSeg: need 1 <= min_size <= max_size <= image_size, got {min_size}, {max_size}, {image_size}"
            )
        self.num_images, self.seed, self.image_size = int(num_images), int(seed), int(image_size)
        self.max_objects, self.min_size, self.max_size, self.flip = (
            int(max_objects),
            int(min_size),
            int(max_size),
            bool(flip),
        )

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"ShapesSeg: index {index} outside 0..{self.num_images - 1}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(index)]))
        image, mask = render_shapes_mask(rng, self.image_size, self.max_objects, self.min_size, self.max_size)
        images = torch.from_numpy(((image.astype(np.float32) - _MEAN) / _STD).transpose(2, 0, 1).copy())
        masks = torch.from_numpy(mask)
        if self.flip and float(torch.rand(())) < 0.5:
            images, masks = images.flip(-1), masks.flip(-1)
        return {"images": images, "masks": masks}
