"""classification plugin: registration, ImageClassifier over pc3d.nn backbones, LinearClsHead."""

from __future__ import annotations

import pytest
import torch

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.nn import MLP, VGG, AlexNet, GoogLeNet, LeNet5, ResNet
from pc3d.plugin_manager import PluginManager
from pc3d_classification import ConvNet, DigitsDataset, ImageClassifier, LinearClsHead, TopKAccuracy

CONFIG = "convnet-small_cifar10.yaml"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["classification"], block=[]).load()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Two cores shared by pytest workers: more intra-op threads only spin against each other.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
        "dataset": ["DigitsDataset", "ImageFolderDataset"],
        "metric": ["TopKAccuracy"],
    }
    registry = manager.registry
    assert registry.get("model", "ImageClassifier") is ImageClassifier
    assert registry.get("backbone", "ResNet") is ResNet  # pc3d.nn's, registered by the core
    assert registry.get("dataset", "DigitsDataset") is DigitsDataset
    assert registry.get("metric", "TopKAccuracy") is TopKAccuracy


# (backbone, input shape): every pc3d.nn backbone, small widths to keep the test fast.
BACKBONES = {
    "MLP": (lambda: MLP(in_features=64, hidden_channels=(32, 16)), (3, 1, 8, 8)),
    "LeNet5": (lambda: LeNet5(in_channels=1), (3, 1, 28, 28)),
    "LeNet5-stage1": (lambda: LeNet5(in_channels=1, out_indices=(1,)), (3, 1, 20, 24)),
    "AlexNet": (lambda: AlexNet(in_channels=3, channels=(8, 16, 16, 16, 16)), (3, 3, 67, 67)),
    "VGG11-bn": (
        lambda: VGG(depth=11, in_channels=3, channels=(8, 8, 16, 16, 16), norm="bn"),
        (3, 3, 32, 32),
    ),
    "GoogLeNet": (lambda: GoogLeNet(in_channels=3, out_indices=(2,)), (2, 3, 64, 64)),
    "ResNet18": (
        lambda: ResNet(18, in_channels=1, base_channels=8, stem="conv3", out_indices=(3,)),
        (3, 1, 8, 8),
    ),
    "ResNet50-multi": (
        lambda: ResNet(50, in_channels=3, base_channels=4, out_indices=(1, 2, 3)),
        (2, 3, 32, 32),
    ),
    "ConvNet": (lambda: ConvNet(3, [8, 16]), (3, 3, 20, 24)),
}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_any_backbone_gives_logits_and_gradients(name):
    torch.manual_seed(0)
    make, shape = BACKBONES[name]
    backbone = make()
    channels = backbone.out_channels if isinstance(backbone.out_channels, int) else backbone.out_channels[-1]
    model = ImageClassifier(backbone, LinearClsHead(channels, 5))
    images = torch.randn(shape, requires_grad=True)
    labels = torch.arange(shape[0]) % 5
    assert model(images).shape == (shape[0], 5)
    loss = model.loss(images, labels)["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    # Every trainable parameter is reached, except those of stages after the deepest requested
    # output, which a pc3d.nn backbone does not run.
    deepest = max(getattr(backbone, "out_indices", (-1,)))
    unused = tuple(f"backbone.stages.{i}." for i in range(deepest + 1, len(getattr(backbone, "stages", ()))))
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None and not n.startswith(unused)
    ]
    assert not missing, missing
    model.eval()
    out = model.predict(images.detach())
    assert set(out) == {"logits", "scores", "labels"}
    assert torch.allclose(out["scores"].sum(dim=1), torch.ones(shape[0]))
    assert torch.equal(out["labels"], out["logits"].argmax(dim=1))


def test_feature_index_picks_a_shallower_output():
    backbone = ResNet(
        18, in_channels=1, base_channels=8, stem="conv3", out_indices=(1, 3)
    )  # channels (16, 64)
    model = ImageClassifier(backbone, LinearClsHead(16, 3), feature_index=0)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(
        ShapeError,
        match=r"head.in_channels is 16 but backbone.out_channels is 64 \(output -1 of \(16, 64\)\)",
    ):
        ImageClassifier(backbone, LinearClsHead(16, 3))
    with pytest.raises(FormatError, match="feature_index 2 is out of range"):
        ImageClassifier(backbone, LinearClsHead(16, 3), feature_index=2)


def test_head_pools_any_spatial_shape():
    head = LinearClsHead(in_channels=6, num_classes=3)
    assert head(torch.randn(2, 6)).shape == (2, 3)
    assert head(torch.randn(2, 6, 50)).shape == (2, 3)  # points
    assert head(torch.randn(2, 6, 4, 5)).shape == (2, 3)  # images
    features = torch.randn(2, 6, 4, 5)
    # Global average pooling, then the linear layer.
    assert torch.allclose(head(features), head.linear(features.mean(dim=(2, 3))))
    with pytest.raises(ShapeError, match=r"expected Tensor\[B, 6, \.\.\.\], got \(2, 5\)"):
        head(torch.randn(2, 5))


def test_head_loss_is_cross_entropy_with_optional_smoothing():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 2])
    plain = LinearClsHead(4, 3).loss(logits, labels)
    # -log softmax of the true class, averaged by hand.
    by_hand = -(logits.log_softmax(dim=1)[[0, 1], [0, 2]]).mean()
    assert torch.allclose(plain, by_hand)
    smoothed = LinearClsHead(4, 3, label_smoothing=0.3).loss(logits, labels)
    target = torch.full((2, 3), 0.1) + 0.7 * torch.nn.functional.one_hot(labels, 3)
    assert torch.allclose(smoothed, -(target * logits.log_softmax(dim=1)).sum(dim=1).mean())
    with pytest.raises(FormatError, match="label_smoothing"):
        LinearClsHead(4, 3, label_smoothing=1.0)


def test_bad_labels_are_named():
    head = LinearClsHead(in_channels=4, num_classes=3)
    logits = torch.zeros(2, 3)
    with pytest.raises(FormatError) as info:
        head.loss(logits, torch.tensor([0, 3]))
    assert (
        str(info.value)
        == "labels must lie in [0, 3) = [0, num_classes) (model.head.num_classes); got 3 in the batch"
    )
    with pytest.raises(FormatError, match=r"got -1 in the batch"):
        head.loss(logits, torch.tensor([-1, 2]))
    with pytest.raises(ShapeError):
        head.loss(logits, torch.tensor([0]))


def test_config_builds_and_trains_on_a_tiny_fixed_batch(manager):
    torch.manual_seed(0)
    config = load_config(
        CONFIG,
        [
            "model.backbone.channels=[8, 16]",
            "model.backbone.layers_per_stage=1",
            "model.head.in_channels=16",
            "model.head.num_classes=2",
            "model.head.dropout=0.0",
        ],
        search_dirs=manager.config_dirs(),
    )
    model = build(config.node("model"), kind="model", registry=manager.registry)
    images, labels = two_pattern_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    # Same few-steps loop as the seg plugin's config test on purpose: each distribution's tests stand alone.
    losses = []
    for _ in range(15):
        loss = model.loss(images, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    model.eval()
    assert torch.equal(model.predict(images)["labels"], labels)


@pytest.mark.parametrize(
    ("config_name", "shape"),
    [
        (CONFIG, (2, 3, 32, 32)),
        ("lenet5_digits.yaml", (2, 1, 32, 32)),
        ("resnet18_digits.yaml", (2, 1, 8, 8)),
    ],
)
def test_shipped_configs_build(manager, config_name, shape):
    config = load_config(config_name, search_dirs=manager.config_dirs())
    model = build(config.node("model"), kind="model", registry=manager.registry)
    assert model(torch.zeros(shape)).shape == (2, 10)
    assert len(config["class_names"]) == 10


def test_mismatched_channels_name_the_config_key(manager):
    config = load_config(CONFIG, ["model.head.in_channels=64"], search_dirs=manager.config_dirs())
    with pytest.raises(ConfigError, match="head.in_channels is 64 but backbone.out_channels is 128"):
        build(config.node("model"), kind="model", registry=manager.registry)
