"""Image files as uint8 arrays: the one reader of the image datasets (COCO detection, image
folders for classification).

Pillow is imported when an image is read (it is in pc3d's ``vis`` extra).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from pc3d.errors import FormatError, MissingDependencyError

__all__ = ["IMAGE_EXTENSIONS", "read_image"]

#: Suffixes the image folders look for (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike[str], mode: Literal["RGB", "L"] = "RGB", what: str = "") -> np.ndarray:
    """An image file as ``uint8[H, W, 3]`` (``mode="RGB"``) or ``uint8[H, W]`` (``"L"``).

    Grey and RGBA images are converted; 16-bit images keep their top 8 bits (as OpenCV's colour
    read does) instead of saturating to white.

    Args:
        path: the file.
        mode: ``"RGB"`` or ``"L"`` (grey).
        what: what the image is, for messages (``image id 3 of val.json``).

    Raises:
        FormatError: an unreadable file or a floating-point image, naming ``path`` (and ``what``).
        MissingDependencyError: Pillow is not installed.
    """
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow is in the vis extra
        raise MissingDependencyError("reading images needs Pillow: pip install pillow") from err
    where = f"{path} ({what})" if what else str(path)
    try:
        with Image.open(Path(path)) as handle:
            if handle.mode in ("I;16", "I;16B", "I;16L", "I"):
                wide = np.asarray(handle, dtype=np.int64)
                grey = np.clip(wide >> 8 if wide.max(initial=0) > 255 else wide, 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2) if mode == "RGB" else grey
            if handle.mode == "F":
                raise FormatError(f"{where}: a floating-point image; save it as 8-bit RGB or grey")
            return np.asarray(handle.convert(mode))
    except OSError as err:
        raise FormatError(f"{where}: cannot read the image: {err}") from err
