"""A trained 2D detector on image files, from Python: the data set's test pipeline, the model,
and the boxes in the original image's pixels.

::

    import pc3d.inference
    from pc3d_det2d import detect_images, test_transforms

    model = pc3d.inference.load_model("retinanet_r18-fpn_shapes", "work_dirs/retinanet/best.pth")
    found = detect_images(model, ["a.png", "b.jpg"], test_transforms("retinanet_r18-fpn_shapes"))
    found[0].boxes, found[0].scores, found[0].labels   # x1, y1, x2, y2 in a.png's pixels
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pc3d.config import Config, ConfigError, build, load_config
from pc3d.errors import FormatError
from pc3d.io.images import read_image
from pc3d_det2d.data import boxes_to_original, collate_detection, prepare_sample
from pc3d_det2d.structures import Detections2D

__all__ = ["detect_images", "test_transforms"]

ImageLike = str | os.PathLike[str] | np.ndarray


def test_transforms(config: str | os.PathLike[str] | Config) -> list[Any]:
    """The transforms of a config's test data set (``data.test``, else ``data.val``): resize,
    normalise and pad as the model was evaluated, without building the data set.

    Raises:
        ConfigError: no ``data.test`` / ``data.val`` data set with ``transforms``.
    """
    config = config if isinstance(config, Config) else load_config(config)
    for split in ("test", "val"):
        steps = config.get(f"data.{split}.dataset.transforms", None)
        if isinstance(steps, list):
            return [
                build(config.node(f"data.{split}.dataset.transforms.{i}"), kind="transform")
                for i in range(len(steps))
            ]
    raise ConfigError(f"{config.path or 'config'}: no data.test or data.val dataset with transforms to take")


@torch.no_grad()
def detect_images(
    model: nn.Module, images: Sequence[ImageLike], transforms: Sequence[Any], batch_size: int = 8
) -> list[Detections2D]:
    """Detections of a 2D detector on images, in each image's original pixels.

    Args:
        model: a detector with ``predict(images, image_sizes)`` (RetinaNet, FCOS, Faster R-CNN),
            e.g. from :func:`pc3d.inference.load_model`.
        images: image files (any mode :func:`pc3d.io.images.read_image` reads) or ``uint8[H, W,
            3]`` RGB arrays.
        transforms: the test pipeline (:func:`test_transforms`); a random flip is refused.
        batch_size: images per forward pass.

    Returns:
        One :class:`Detections2D` per image, boxes ``x1, y1, x2, y2`` in that image's pixels.

    Raises:
        FormatError: an unreadable image or an array that is not ``uint8[H, W, 3]``.
    """
    from pc3d_det2d.transforms import DetRandomFlip

    if any(isinstance(t, DetRandomFlip) for t in transforms):
        raise FormatError(
            "detect_images takes the test pipeline: leave DetRandomFlip out (it is for training)"
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    found: list[Detections2D] = []
    try:
        for start in range(0, len(images), batch_size):
            samples = [
                prepare_sample(_pixels(image), np.zeros((0, 4), np.float32), [], transforms, image_id=index)
                for index, image in enumerate(images[start : start + batch_size], start=start)
            ]
            batch = collate_detection(samples)
            output = model.predict(batch["images"].to(device), batch["image_sizes"].to(device))
            for dets, meta in zip(output, batch["metas"], strict=True):
                found.append(
                    Detections2D(boxes_to_original(dets.boxes, meta), dets.scores.cpu(), dets.labels.cpu())
                )
    finally:
        model.train(was_training)
    return found


def _pixels(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise FormatError(f"an image array must be uint8[H, W, 3] (RGB), got {image.dtype} {image.shape}")
        return image
    return read_image(Path(image), "RGB")
