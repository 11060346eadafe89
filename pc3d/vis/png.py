"""Writing rendered images as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.errors import FormatError


def check_png_path(out: str | Path) -> Path:
    """`out` as a `Path`, checked to name a `.png` file (before anything is rendered).

    Raises:
        FormatError: another extension.
    """
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise FormatError(f"{path}: the output must be a .png file")
    return path


def save_png(img: np.ndarray, out: str | Path) -> Path:
    """Write `uint8[H, W, 3]` `img` to `out` as PNG (parent folders are created).

    The file is written atomically: an interrupted save leaves no half-written PNG behind.

    Returns:
        The path written.

    Raises:
        FormatError: `out` is not a `.png` path.
    """
    from PIL import Image

    from pc3d.io.atomic import atomic_write

    path = check_png_path(out)
    picture = Image.fromarray(np.ascontiguousarray(img))
    return atomic_write(path, lambda handle: picture.save(handle, format="PNG", optimize=True))
