"""Image transforms of the COCO detection pipeline that move the boxes with the pixels.

Each transform is a callable on the pipeline's ``results`` mapping: ``image`` (``uint8[H, W, 3]``
until :class:`DetNormalize`, float32 after), ``gt_boxes`` (``float32[M, 4]`` pixel ``x1, y1,
x2, y2``) and ``meta`` (``scale_factor`` and ``flip`` are updated so that
:func:`pc3d_det2d.data.boxes_to_original` can undo them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from pc3d.errors import FormatError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "DetNormalize", "DetPad", "DetRandomFlip", "DetResize"]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class DetResize:
    """Resize the image (bilinear) and scale the boxes with it.

    Args:
        scale: ``(long_edge, short_edge)`` limits with ``keep_ratio`` (the image is scaled by the
            largest factor that keeps its long side <= ``scale[0]`` and its short side <=
            ``scale[1]``, MMDetection's rule); ``(width, height)`` exactly without it.
        keep_ratio: keep the aspect ratio.

    Raises:
        FormatError: a scale that is not two positive ints.
    """

    def __init__(self, scale: Sequence[int], keep_ratio: bool = True) -> None:
        if len(scale) != 2 or any(int(s) < 1 for s in scale):
            raise FormatError(f"DetResize scale must be two positive ints, got {scale!r}")
        self.scale = (int(scale[0]), int(scale[1]))
        self.keep_ratio = keep_ratio

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        """Resize ``results["image"]`` (uint8) and scale ``results["gt_boxes"]``; record the factor in ``meta``."""
        image: np.ndarray = results["image"]
        if image.dtype != np.uint8:
            raise FormatError(
                f"DetResize needs the uint8 image, got {image.dtype}: put it before DetNormalize in the pipeline"
            )
        if results["meta"].get("padded"):
            raise FormatError("DetResize after DetPad would scale the padding too: put it before DetPad")
        h, w = image.shape[:2]
        if self.keep_ratio:
            long_limit, short_limit = max(self.scale), min(self.scale)
            factor = min(long_limit / max(h, w), short_limit / min(h, w))
            new_w, new_h = max(1, int(w * factor + 0.5)), max(1, int(h * factor + 0.5))
        else:
            new_w, new_h = self.scale
        if (new_w, new_h) != (w, h):
            image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
        sx, sy = new_w / w, new_h / h
        results["image"] = image
        results["gt_boxes"] = results["gt_boxes"] * np.array([sx, sy, sx, sy], dtype=np.float32)
        prev = results["meta"]["scale_factor"]
        results["meta"]["scale_factor"] = (prev[0] * sx, prev[1] * sy)
        return results


class DetRandomFlip:
    """Mirror the image left-right with probability ``prob`` (a box ``x1, x2`` becomes
    ``W - x2, W - x1``). Draws from numpy's global generator, which the engine seeds per sample.

    Args:
        prob: the probability of a flip, in [0, 1].

    Raises:
        FormatError: ``prob`` outside [0, 1].
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise FormatError(f"DetRandomFlip prob must be in [0, 1], got {prob!r}")
        self.prob = float(prob)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        """Flip ``results["image"]`` and ``results["gt_boxes"]`` (or leave them), recording it in ``meta``."""
        if results["meta"].get("padded"):
            raise FormatError(
                "DetRandomFlip after DetPad would mirror about the padded width: put it before DetPad "
                "(the order is DetResize, DetRandomFlip, DetNormalize, DetPad)"
            )
        if self.prob <= 0 or np.random.random_sample() >= self.prob:
            return results
        image: np.ndarray = results["image"]
        width = image.shape[1]
        results["image"] = np.ascontiguousarray(image[:, ::-1])
        boxes = results["gt_boxes"].copy()
        boxes[:, 0] = width - results["gt_boxes"][:, 2]
        boxes[:, 2] = width - results["gt_boxes"][:, 0]
        results["gt_boxes"] = boxes
        results["meta"]["flip"] = not results["meta"]["flip"]
        return results


class DetNormalize:
    """``(image - mean) / std`` per channel (RGB order), to float32.

    Args:
        mean: three channel means (ImageNet's by default, on 0-255 pixels).
        std: three positive channel standard deviations.

    Raises:
        FormatError: not three means and three positive stds.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if len(mean) != 3 or len(std) != 3 or any(float(s) <= 0 for s in std):
            raise FormatError(f"DetNormalize needs 3 means and 3 positive stds, got {mean!r}, {std!r}")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        """Normalise ``results["image"]`` to float32."""
        results["image"] = (results["image"].astype(np.float32) - self.mean) / self.std
        return results


class DetPad:
    """Pad the image at the bottom and right with ``value`` to a multiple of ``size_divisor``
    (boxes do not move). The unpadded size stays in ``image_size`` for anchor validity and
    clipping.

    Args:
        size_divisor: the padded height and width are multiples of it.
        value: the padding value.

    Raises:
        FormatError: ``size_divisor`` below 1.
    """

    def __init__(self, size_divisor: int = 32, value: float = 0.0) -> None:
        if size_divisor < 1:
            raise FormatError(f"DetPad size_divisor must be >= 1, got {size_divisor!r}")
        self.size_divisor = int(size_divisor)
        self.value = float(value)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        """Pad ``results["image"]``; the boxes stay where they are."""
        image: np.ndarray = results["image"]
        h, w = image.shape[:2]
        d = self.size_divisor
        ph, pw = math.ceil(h / d) * d, math.ceil(w / d) * d
        if (ph, pw) != (h, w):
            padded = np.full((ph, pw, *image.shape[2:]), self.value, dtype=image.dtype)
            padded[:h, :w] = image
            results["image"] = padded
        results["meta"]["padded"] = True  # geometry after this would count the padding as image
        return results
