"""ImageFolderDataset: a user's images in one folder per class, read in any PIL mode, and the
CIFAR-10 config training on such a folder with `pc3d train`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pc3d.cli import main
from pc3d.errors import FormatError
from pc3d_classification import ImageFolderDataset


def _folder(root: Path, per_class: int = 12) -> Path:
    """Two classes told apart by brightness, in mixed sizes and modes (RGB, grey, RGBA, 16-bit)."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("dark", "bright")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            base = 40 + 160 * label
            pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            mode = i % 4
            if mode == 0:
                Image.fromarray(pixels).save(root / name / f"{i}.png")
            elif mode == 1:
                Image.fromarray(pixels[..., 0]).save(root / name / f"{i}.jpg")
            elif mode == 2:
                Image.fromarray(np.dstack([pixels, np.full((h, w), 255, np.uint8)])).save(
                    root / name / f"{i}.png"
                )
            else:
                Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(root / name / f"{i}.png")
    (root / "bright" / "notes.txt").write_text("not an image")
    return root


def test_samples_labels_sizes_and_modes(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train")
    dataset = ImageFolderDataset(str(root), image_size=[16, 24], mean=[0.0] * 3, std=[1.0] * 3)
    assert dataset.class_names == ["bright", "dark"] and len(dataset) == 24  # sorted, the .txt skipped
    means = {0: [], 1: []}
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample["images"].shape == (3, 16, 24) and sample["images"].dtype == torch.float32
        means[int(sample["labels"])].append(float(sample["images"].mean()))
    # Every mode, 16-bit included, keeps its brightness: bright (label 0 here) above dark.
    assert min(means[0]) > 0.5 > max(means[1])
    ordered = ImageFolderDataset(str(root), class_names=["dark", "bright"], channels=1)
    assert ordered[0]["images"].shape == (1, 32, 32) and int(ordered[0]["labels"]) == 0


def test_bad_folders_name_what_is_wrong(tmp_path: Path) -> None:
    root = _folder(tmp_path / "train", per_class=1)
    with pytest.raises(
        FormatError,
        match=r"no folder for class 'brigth' \(did you mean 'bright'\?\); its folders: bright, dark",
    ):
        ImageFolderDataset(str(root), class_names=["dark", "brigth"])
    with pytest.warns(UserWarning, match="folders not in class_names are left out: bright"):
        assert len(ImageFolderDataset(str(root), class_names=["dark"])) == 1
    with pytest.raises(FormatError, match="is not a folder"):
        ImageFolderDataset(str(tmp_path / "nothing"))
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(FormatError, match="no images"):
        ImageFolderDataset(str(tmp_path / "empty"))
    with pytest.raises(FormatError, match="mean and std need 3 values"):
        ImageFolderDataset(str(root), mean=[0.5])
    (root / "dark" / "broken.png").write_bytes(b"not a png")
    darks = ImageFolderDataset(str(root), class_names=["dark"])
    with pytest.raises(
        FormatError, match=re.escape(str(root / "dark" / "broken.png")) + ": cannot read the image"
    ):
        darks[darks.files.index(root / "dark" / "broken.png")]


def test_the_cifar10_config_trains_on_an_image_folder(tmp_path: Path) -> None:
    for split in ("train", "val"):
        _folder(tmp_path / "data" / split)
    work = tmp_path / "work"
    overrides = [
        f"data_root={tmp_path / 'data'}",
        "class_names=[bright, dark]",
        "model.head.num_classes=2",
        "metrics.0.topk=[1]",
        "model.backbone.channels=[8, 16, 16]",
        "model.head.in_channels=16",
        "data.train.num_workers=0",
        "data.val.num_workers=0",
        "data.train.batch_size=8",
        "schedule.epochs=8",
        "schedule.warmup.iters=2",
        "optimizer={type: Adam, lr: 0.01}",
        "runtime.num_threads=1",
    ]
    assert main(["train", "convnet-small_cifar10", "--work-dir", str(work), "--set", *overrides]) == 0
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["top1"] >= 0.9  # brightness is easy to learn
    assert (work / "best.pth").is_file()
