"""Your own images for classification: one folder per class (torchvision's ``ImageFolder``
layout, MMPretrain's ``CustomDataset`` without an annotation file).

::

    ROOT/cat/0001.jpg
    ROOT/cat/0002.png
    ROOT/dog/a.jpg

A split is a root of its own (``data/pets/train``, ``data/pets/val``). Images are read with
:func:`pc3d.io.images.read_image`, resized to ``image_size``, scaled to ``[0, 1]`` and
standardised with ``mean`` / ``std``; training splits may flip them left-right.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pc3d.errors import FormatError, did_you_mean
from pc3d.io.images import IMAGE_EXTENSIONS, read_image

__all__ = ["ImageFolderDataset"]


class ImageFolderDataset:
    """Images in one folder per class: ``dataset[i] -> {"images": Tensor[C, H, W], "labels":
    Long[], "index": int}`` (what :class:`~pc3d_classification.models.ImageClassifier` and
    ``TopKAccuracy`` take, as :class:`~pc3d_classification.datasets.DigitsDataset` gives).

    Args:
        root: the folder holding one sub-folder per class.
        class_names: the model's classes in label order (the config's ``class_names``): each is
            a sub-folder (a missing one is an error, with a "did you mean"); sub-folders of
            other names are left out with a warning. Default: every sub-folder, sorted by name
            (torchvision's order).
        image_size: ``[height, width]`` (or one int for a square) every image is resized to
            (bilinear).
        channels: 3 (RGB) or 1 (grey).
        mean: per-channel mean of the ``[0, 1]`` pixels, subtracted (one value per channel).
        std: per-channel standard deviation, divided by.
        flip_prob: probability of a left-right flip of each image (augmentation for training;
            the engine seeds it per sample); 0 for evaluation.

    Raises:
        FormatError: a missing root, class folder or image, no images, or arguments out of
            range (each naming the path or argument).
    """

    def __init__(
        self,
        root: str,
        class_names: list[str] | None = None,
        image_size: int | list[int] = 32,
        channels: int = 3,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        flip_prob: float = 0.0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FormatError(f"ImageFolderDataset: {self.root} is not a folder (one sub-folder per class)")
        size = [image_size, image_size] if isinstance(image_size, int) else list(image_size)
        if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size):
            raise FormatError(
                f"ImageFolderDataset: image_size must be a positive int or [height, width], got {image_size!r}"
            )
        if channels not in (1, 3):
            raise FormatError(f"ImageFolderDataset: channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        mean = [0.5] * channels if mean is None else list(mean)
        std = [0.5] * channels if std is None else list(std)
        if len(mean) != channels or len(std) != channels or any(s <= 0 for s in std):
            raise FormatError(
                f"ImageFolderDataset: mean and std need {channels} values each (std > 0), got {mean}, {std}"
            )
        if not 0.0 <= flip_prob <= 1.0:
            raise FormatError(f"ImageFolderDataset: flip_prob must be in [0, 1], got {flip_prob!r}")
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if class_names is None:
            class_names = folders
        missing = [name for name in class_names if name not in folders]
        if missing:
            hints = "".join(did_you_mean(name, folders) for name in missing)
            raise FormatError(
                f"ImageFolderDataset: {self.root} has no folder for class {', '.join(map(repr, missing))}{hints}; "
                f"its folders: {', '.join(folders) or 'none'}"
            )
        others = [name for name in folders if name not in class_names]
        if others:
            warnings.warn(
                f"{self.root}: folders not in class_names are left out: {', '.join(others)}", stacklevel=2
            )
        self.class_names = list(class_names)
        self.files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.class_names):
            found = sorted(
                p
                for p in (self.root / name).iterdir()
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            self.files += found
            labels += [label] * len(found)
        if not self.files:
            raise FormatError(
                f"ImageFolderDataset: no images ({' '.join(IMAGE_EXTENSIONS)}) in the class folders of {self.root}"
            )
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.size = (int(size[0]), int(size[1]))
        self.channels = channels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.flip_prob = float(flip_prob)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"ImageFolderDataset has {len(self)} images, asked for {index}")
        pixels = read_image(self.files[index], "RGB" if self.channels == 3 else "L")
        image = torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255.0
        image = image.permute(2, 0, 1) if image.dim() == 3 else image[None]
        if tuple(image.shape[1:]) != self.size:
            image = F.interpolate(image[None], size=self.size, mode="bilinear", align_corners=False)[0]
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            image = image.flip(-1)
        image = (image - self.mean) / self.std
        return {"images": image.contiguous(), "labels": self.labels[index], "index": int(index) % len(self)}
