"""classification plugin: ConvNet, LinearClsHead, ImageClassifier."""

from __future__ import annotations

import pytest
import torch

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.plugins import PluginManager
from pc3d_classification import ConvNet, ImageClassifier, LinearClsHead

CONFIG = "convnet-small_cifar10.yaml"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["classification"], block=[]).load()


def two_pattern_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """8 fixed 8x8 images: class 0 has horizontal stripes, class 1 vertical ones."""
    generator = torch.Generator().manual_seed(0)
    stripes = (torch.arange(8) % 4 < 2).float()
    horizontal = stripes[:, None].expand(8, 8)
    images = torch.stack([horizontal, horizontal.T] * 4)[:, None].expand(-1, 3, -1, -1).clone()
    images += 0.1 * torch.randn(images.shape, generator=generator)
    return images, torch.tensor([0, 1] * 4)


def test_registered_through_the_entry_point(manager):
    info = next(p for p in manager.loaded if p.distribution == "pc3d-classification")
    assert info.registered == {
        "backbone": ["ConvNet"],
        "head": ["LinearClsHead"],
        "model": ["ImageClassifier"],
    }
    assert manager.registry.get("model", "ImageClassifier") is ImageClassifier


def test_shapes_and_gradient():
    model = ImageClassifier(ConvNet(3, [8, 16]), LinearClsHead(16, 5))
    images = torch.randn(4, 3, 20, 24, requires_grad=True)
    logits = model(images)
    assert logits.shape == (4, 5)
    model.loss(images, torch.tensor([0, 1, 2, 4]))["loss"].backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    probabilities = model.predict(images)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(4))


def test_head_pools_any_spatial_shape():
    head = LinearClsHead(in_channels=6, num_classes=3)
    assert head(torch.randn(2, 6)).shape == (2, 3)
    assert head(torch.randn(2, 6, 50)).shape == (2, 3)  # points
    assert head(torch.randn(2, 6, 4, 5)).shape == (2, 3)  # images
    with pytest.raises(ShapeError, match=r"expected Tensor\[B, 6, \.\.\.\], got \(2, 5\)"):
        head(torch.randn(2, 5))


def test_bad_labels_are_named():
    head = LinearClsHead(in_channels=4, num_classes=3)
    logits = torch.zeros(2, 3)
    with pytest.raises(FormatError, match=r"labels must lie in \[0, 3\), got \[0, 3\]"):
        head.loss(logits, torch.tensor([0, 3]))
    with pytest.raises(ShapeError):
        head.loss(logits, torch.tensor([0]))


def test_config_builds_and_trains_on_a_tiny_fixed_batch(manager):
    torch.manual_seed(0)
    config = load_config(
        CONFIG,
        ["model.backbone.channels=[8, 16]", "model.backbone.layers_per_stage=1",
         "model.head.in_channels=16", "model.head.num_classes=2", "model.head.dropout=0.0"],
        search_dirs=manager.config_dirs(),
    )
    model = build(config.node("model"), kind="model", registry=manager.registry)
    images, labels = two_pattern_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        loss = model.loss(images, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    model.eval()
    assert torch.equal(model.predict(images).argmax(dim=1), labels)


def test_shipped_config_builds(manager):
    config = load_config(CONFIG, search_dirs=manager.config_dirs())
    model = build(config.node("model"), kind="model", registry=manager.registry)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert len(config["class_names"]) == 10


def test_mismatched_channels_name_the_config_key(manager):
    config = load_config(CONFIG, ["model.head.in_channels=64"], search_dirs=manager.config_dirs())
    with pytest.raises(ConfigError, match="head.in_channels is 64 but backbone.out_channels is 128"):
        build(config.node("model"), kind="model", registry=manager.registry)
