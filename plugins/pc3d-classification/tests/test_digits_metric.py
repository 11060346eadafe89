"""DigitsDataset (scikit-learn's digits) and the TopKAccuracy metric."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError, MissingDependencyError, ShapeError
from pc3d_classification import DigitsDataset, TopKAccuracy
from pc3d_classification import datasets as datasets_module

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_split_is_deterministic_disjoint_and_complete():
    train, test = DigitsDataset("train"), DigitsDataset("test")
    assert (len(train), len(test)) == (1437, 360)  # 80 / 20 of 1,797
    again = DigitsDataset("test")
    assert torch.equal(again.indices, test.indices) and torch.equal(again.images, test.images)
    joined = torch.cat([train.indices, test.indices]).sort().values
    assert torch.equal(joined, torch.arange(1797))  # disjoint and together everything
    other_seed = DigitsDataset("test", seed=1)
    assert not torch.equal(other_seed.indices, test.indices)
    # Labels and images are sklearn's, in sklearn's order.
    bunch = sklearn_datasets.load_digits()
    assert torch.equal(test.labels, torch.from_numpy(bunch.target[test.indices.numpy()]))
    raw = DigitsDataset("test", normalize=False)
    assert torch.allclose(raw.images[:, 0] * 16, torch.from_numpy(bunch.images[test.indices.numpy()]).float())


@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_split_is_stratified(fraction):
    labels = sklearn_datasets.load_digits().target
    test = DigitsDataset("test", test_fraction=fraction, seed=3)
    per_class_all = np.bincount(labels, minlength=10)
    per_class_test = np.bincount(test.labels.numpy(), minlength=10)
    # Each class keeps its share, up to rounding (one image either way).
    assert np.all(np.abs(per_class_test - fraction * per_class_all) <= 1), (per_class_test, per_class_all)


def test_samples_resize_and_normalise():
    train = DigitsDataset("train", image_size=32)
    sample = train[5]
    assert set(sample) == {"images", "labels", "index"}
    assert sample["images"].shape == (1, 32, 32) and sample["images"].dtype == torch.float32
    assert sample["labels"].dtype == torch.int64 and 0 <= int(sample["labels"]) < 10
    assert sample["index"] == int(train.indices[5])
    # Standardised with the training split's statistics.
    assert abs(float(train.images.mean())) < 1e-4 and abs(float(train.images.std()) - 1) < 1e-3
    # The test split uses the same statistics: its blank pixels map to the same value.
    test = DigitsDataset("test", image_size=32)
    assert test.background == pytest.approx(train.background)
    # Bilinear resizing of the [0, 1] image, then the standardisation.
    raw = DigitsDataset("train", normalize=False)
    resized = torch.nn.functional.interpolate(
        raw.images[:1], size=(32, 32), mode="bilinear", align_corners=False
    )
    unscaled = DigitsDataset("train", image_size=32, normalize=False)
    assert torch.allclose(unscaled.images[:1], resized)


def test_random_shift_moves_training_images_only():
    train = DigitsDataset("train", max_shift=2, normalize=False)
    original = train.images[7]
    torch.manual_seed(0)
    moved = [train[7]["images"] for _ in range(12)]
    assert any(not torch.equal(m, original) for m in moved)
    padded = torch.nn.functional.pad(original, (2, 2, 2, 2))
    for image in moved:
        # Each is a window of the zero-padded original at an offset in [-2, 2] along both axes.
        windows = [
            padded[:, 2 + dy : 10 + dy, 2 + dx : 10 + dx] for dy in range(-2, 3) for dx in range(-2, 3)
        ]
        assert any(torch.equal(image, w) for w in windows)
    test = DigitsDataset("test", max_shift=2)
    assert torch.equal(test[3]["images"], test.images[3])


def test_bad_arguments_are_named():
    with pytest.raises(FormatError, match="split must be 'train', 'test' or 'all', got 'val'"):
        DigitsDataset("val")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="test_fraction"):
        DigitsDataset("train", test_fraction=1.0)
    with pytest.raises(FormatError, match="image_size"):
        DigitsDataset("train", image_size=0)
    with pytest.raises(IndexError, match="has 360 images, asked for 360"):
        DigitsDataset("test")[360]


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    datasets_module._load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    try:
        with pytest.raises(
            MissingDependencyError, match=r"needs scikit-learn.*pc3d-classification\[digits\]"
        ):
            DigitsDataset("train")
    finally:
        datasets_module._load_digits.cache_clear()


def test_top_k_accuracy_against_hand_counts():
    # 5 samples, 6 classes; the rank of the true class is 1, 3, 6, 2, 5 (1 = highest score).
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0: rank 1
            [0.5, 0.3, 0.1, 0.05, 0.04, 0.01],  # label 2: rank 3
            [0.3, 0.25, 0.2, 0.15, 0.1, 0.0],  # label 5: rank 6
            [0.1, 0.6, 0.3, 0.0, 0.0, 0.0],  # label 2: rank 2
            [0.3, 0.25, 0.2, 0.15, 0.1, 0.0],  # label 4: rank 5
        ]
    )
    labels = torch.tensor([0, 2, 5, 2, 4])
    metric = TopKAccuracy(topk=[1, 2, 5])
    metric.reset()
    metric.update({"scores": scores[:2]}, {"labels": labels[:2]})
    metric.update({"logits": scores[2:].log()}, {"labels": labels[2:]})  # logits rank the same
    # top-1: rank 1 only -> 1/5; top-2: ranks 1, 2 -> 2/5; top-5: all but rank 6 -> 4/5.
    assert metric.compute() == {
        "top1": pytest.approx(0.2),
        "top2": pytest.approx(0.4),
        "top5": pytest.approx(0.8),
    }


def test_top_k_accuracy_merges_ranks_exactly():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(37, 10, generator=generator)
    labels = torch.randint(0, 10, (37,), generator=generator)
    whole = TopKAccuracy()
    whole.update(scores, {"labels": labels})
    rank0, rank1 = TopKAccuracy(), TopKAccuracy()
    rank0.update(scores[:20], {"labels": labels[:20]})
    rank1.update(scores[20:], {"labels": labels[20:]})
    rank0.merge([rank0.state(), rank1.state()])
    assert rank0.compute() == whole.compute()
    top1 = float((scores.argmax(dim=1) == labels).float().mean())
    assert whole.compute()["top1"] == pytest.approx(top1)


def test_top_k_accuracy_bad_input():
    metric = TopKAccuracy(topk=[1, 5])
    with pytest.raises(ShapeError, match="top-5 asked for, but there are only 3 classes"):
        metric.update(torch.zeros(2, 3), {"labels": torch.tensor([0, 1])})
    with pytest.raises(FormatError, match="needs 'labels' in the batch"):
        metric.update(torch.zeros(2, 6), {"images": torch.zeros(2)})
    with pytest.raises(FormatError, match="'scores' or 'logits'"):
        metric.update({"boxes": torch.zeros(2, 4)}, {"labels": torch.tensor([0, 1])})
    with pytest.raises(FormatError, match="no samples"):
        TopKAccuracy().compute()
    with pytest.raises(FormatError, match="positive ints"):
        TopKAccuracy(topk=[0])
