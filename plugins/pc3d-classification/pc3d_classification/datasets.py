"""scikit-learn's handwritten digits as a map-style dataset for ``pc3d train``.

The 1,797 8x8 grey images (UCI "optdigits", pixel values 0..16, 10 classes) ship inside the
scikit-learn package, so nothing is downloaded. scikit-learn is an optional dependency (the
plugin's ``digits`` extra, pc3d's ``test`` extra); it is imported when a dataset is built.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pc3d.errors import FormatError, MissingDependencyError

DIGITS_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))


@cache
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images float32[1797, 8, 8] in [0, 16], labels int64[1797])``, read once per process."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise MissingDependencyError(
            "DigitsDataset needs scikit-learn (its digits ship inside the package): "
            "pip install 'pc3d-classification[digits]' (or scikit-learn>=1.3)"
        ) from err
    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


@cache
def _split_indices(test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train, test)`` indices: the same for the same fraction and seed."""
    from sklearn.model_selection import train_test_split  # present: _load_digits ran first

    _, labels = _load_digits()
    train, test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    return np.sort(train), np.sort(test)


class DigitsDataset:
    """One split of scikit-learn's digits: ``dataset[i] -> {"images": Tensor[1, S, S],
    "labels": Long[], "index": int}`` with ``S`` = 8 or ``image_size``.

    The split is stratified (each class keeps its share in both parts) and fixed by ``seed``
    (scikit-learn's ``train_test_split``), so train/val/test datasets built with the same
    ``test_fraction`` and ``seed`` never overlap. Images are scaled to ``[0, 1]``, optionally
    resized (bilinear, torch) and, with ``normalize``, standardised with the mean and standard
    deviation of the *training* split's pixels (so the test split carries no information into
    the statistics). With ``max_shift > 0`` each training image is moved by a random whole
    number of pixels in ``[-max_shift, max_shift]`` along each axis (the engine seeds it per
    sample, so runs are reproducible).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (every image, no split).
        test_fraction: share of the images held out for ``"test"``, in ``(0, 1)``.
        seed: fixes the split.
        image_size: resize the 8x8 images to ``image_size`` x ``image_size`` (32 for LeNet-5's
            original geometry); ``None`` keeps 8x8.
        normalize: standardise with the training split's pixel statistics.
        max_shift: random translation in pixels (of the output size) for augmentation; 0: off.

    Raises:
        FormatError: an argument out of range.
        MissingDependencyError: scikit-learn is not installed.
    """

    CLASSES = DIGITS_CLASSES

    def __init__(
        self,
        split: Literal["train", "test", "all"] = "train",
        test_fraction: float = 0.2,
        seed: int = 0,
        image_size: int | None = None,
        normalize: bool = True,
        max_shift: int = 0,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise FormatError(f"DigitsDataset split must be 'train', 'test' or 'all', got {split!r}")
        if not 0.0 < test_fraction < 1.0:
            raise FormatError(f"DigitsDataset test_fraction must lie in (0, 1), got {test_fraction!r}")
        if image_size is not None and (
            isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
        ):
            raise FormatError(f"DigitsDataset image_size must be a positive int or null, got {image_size!r}")
        if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
            raise FormatError(f"DigitsDataset max_shift must be a non-negative int, got {max_shift!r}")
        images, labels = _load_digits()
        train_idx, test_idx = _split_indices(float(test_fraction), int(seed))
        chosen = {"train": train_idx, "test": test_idx, "all": np.arange(len(labels))}[split]
        self.split = split
        self.max_shift = max_shift
        self.indices = torch.from_numpy(chosen)  # positions in sklearn's order, Long[N]
        pixels = torch.from_numpy(images)[:, None] / 16.0  # Tensor[1797, 1, 8, 8] in [0, 1]
        if image_size is not None and image_size != 8:
            pixels = F.interpolate(
                pixels, size=(image_size, image_size), mode="bilinear", align_corners=False
            )
        if normalize:
            train_pixels = pixels[torch.from_numpy(train_idx)]
            mean, std = train_pixels.mean(), train_pixels.std()
            pixels = (pixels - mean) / std
            self.background = float(-mean / std)  # the value of a blank (0) pixel after scaling
        else:
            self.background = 0.0
        self.images: Tensor = pixels[self.indices].contiguous()  # Tensor[N, 1, S, S]
        self.labels: Tensor = torch.from_numpy(labels)[self.indices].contiguous()  # Long[N]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"DigitsDataset ({self.split}) has {len(self)} images, asked for {index}")
        image = self.images[index]
        if self.max_shift > 0 and self.split == "train":
            image = self._shift(image)
        return {"images": image, "labels": self.labels[index], "index": int(self.indices[index])}

    def _shift(self, image: Tensor) -> Tensor:
        """Translate ``Tensor[1, S, S]`` by a random offset, filling with the background value."""
        dy, dx = (torch.randint(-self.max_shift, self.max_shift + 1, (2,))).tolist()
        size = image.shape[-1]
        pad = self.max_shift
        padded = F.pad(image, (pad, pad, pad, pad), value=self.background)
        return padded[:, pad + dy : pad + dy + size, pad + dx : pad + dx + size]
