"""seg plugin: registration, PointNetEncoder, PointMLPSegHead (losses, class weights, Lovász),
FCNHead, the segmentors and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.config import build, list_configs, load_config
from pc3d.config.zoo import ZOO_DIR
from pc3d.errors import FormatError, ShapeError
from pc3d.plugin_manager import PluginManager
from pc3d_seg import FCNHead, ImageSegmentor, PointMLPSegHead, PointNetEncoder, PointSegmentor, lovasz_softmax

KITTI_SCAN = Path(__file__).resolve().parents[3] / "tests/data/kitti/training/velodyne/000004.bin"
CONFIG = "pointnet-tiny_semantickitti.yaml"
SHIPPED = [
    "sparseunet_synthetic-lidar",
    "sparseunet_semantickitti",
    "pointnet-tiny_semantickitti",
    "pointnet2_s3dis",
    "fcn_r18_shapes",
]


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["seg"], block=[]).load()


def test_registered_through_the_entry_point(manager):
    info = next(p for p in manager.loaded if p.distribution == "pc3d-seg")
    assert info.registered == {
        "backbone": ["PointNetEncoder"],  # SparseUNet and PointNet2 are core blocks (pc3d.nn.plugin)
        "head": ["PointMLPSegHead", "FCNHead"],
        "model": ["PointSegmentor", "ImageSegmentor"],
        "dataset": ["SyntheticLidarSeg", "SemanticKittiSeg", "IndoorSeg", "ShapesSeg"],
        "transform": ["SegRotateZ", "SegScale", "SegFlip", "SegJitter", "SegPointSample", "SegCrop"],
    }
    assert info.config_dirs == []  # the seg configs are the zoo's configs/seg/
    seg = ZOO_DIR / "seg"
    assert {p.stem for p in list_configs([seg]) if p.parent == seg} == set(SHIPPED)


def test_encoder_appends_each_clouds_own_global_feature():
    torch.manual_seed(0)
    encoder = PointNetEncoder(in_channels=4, channels=[8], global_channels=6)
    first, second = torch.randn(5, 4), torch.randn(3, 4)
    features = encoder([first, torch.zeros(0, 4), second])
    assert features.shape == (8, 14)
    alone = encoder([second])
    # A cloud's features do not depend on the other clouds in the batch.
    assert torch.allclose(features[5:], alone, atol=1e-6)
    assert torch.allclose(features[:5, 8:], features[0, 8:].expand(5, 6))


def test_encoder_rejects_bad_clouds():
    encoder = PointNetEncoder(in_channels=4)
    cloud = torch.zeros(3, 4)
    cloud[1, 2] = float("inf")
    with pytest.raises(FormatError, match=r"points\[1\] holds NaN or infinite"):
        encoder([torch.zeros(2, 4), cloud])
    with pytest.raises(ShapeError, match=r"points\[0\]: expected Tensor\[N, 4\]"):
        encoder([torch.zeros(2, 3)])


def test_head_ignores_unlabelled_points_and_names_bad_labels():
    head = PointMLPSegHead(in_channels=4, num_classes=3, hidden_channels=[])
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 9.0]], requires_grad=True)
    only_first = head.loss(logits, torch.tensor([0, -1]))
    expected = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0]))
    assert torch.allclose(only_first, expected)
    nothing = head.loss(logits, torch.tensor([-1, -1]))
    assert nothing.item() == 0.0
    nothing.backward()  # still differentiable
    with pytest.raises(FormatError, match=r"got 3 in the batch"):
        head.loss(logits, torch.tensor([0, 3]))
    with pytest.raises(FormatError) as info:
        head.loss(logits, torch.tensor([-2, -1]))  # -1 is ignored, -2 is not a class
    assert str(info.value) == (
        "labels must lie in [0, 3) = [0, num_classes) (model.head.num_classes) or be -1 (ignored); got -2 in the batch"
    )


def test_class_weights_and_lovasz_term():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 1])
    weighted = PointMLPSegHead(2, 2, hidden_channels=[], class_weight=[1.0, 3.0]).losses(logits, labels)
    per_point = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    # Each point's loss times its class's weight, averaged over the labelled points.
    torch.testing.assert_close(weighted["loss_ce"], (per_point * torch.tensor([1.0, 3.0, 3.0])).mean())
    both = PointMLPSegHead(2, 2, hidden_channels=[], lovasz_weight=0.5).losses(logits, labels)
    torch.testing.assert_close(both["loss"], both["loss_ce"] + both["loss_lovasz"])
    torch.testing.assert_close(both["loss_lovasz"], 0.5 * lovasz_softmax(logits, labels))
    # A perfect prediction has no Lovász loss; a confident wrong one has the largest.
    assert float(lovasz_softmax(torch.tensor([[9.0, -9.0], [-9.0, 9.0]]), torch.tensor([0, 1]))) < 1e-6
    assert float(lovasz_softmax(torch.tensor([[-9.0, 9.0], [9.0, -9.0]]), torch.tensor([0, 1]))) > 0.99
    assert float(lovasz_softmax(logits.detach(), torch.tensor([-1, -1, -1]))) == 0.0
    for head in (PointMLPSegHead, FCNHead):  # both heads check their loss settings alike
        with pytest.raises(ValueError, match="class_weight holds 3 weights for num_classes=2"):
            head(2, 2, class_weight=[1.0, 2.0, 3.0])


def test_lovasz_matches_the_iou_it_relaxes_on_hard_predictions():
    # With one-hot probabilities the Lovász-softmax equals the mean over present classes of 1 - IoU.
    labels = torch.tensor([0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    logits = torch.nn.functional.one_hot(predicted, 3).float() * 100.0
    ious = [1 / 3, 2 / 3, 0.0]  # class 0: 1 of {0,1,4}; class 1: 2 of {1,2,3}; class 2: none
    torch.testing.assert_close(lovasz_softmax(logits, labels), torch.tensor(1.0 - sum(ious) / 3))


def test_fcn_head_and_image_segmentor_shapes():
    head = FCNHead(in_channels=[4, 8], num_classes=3, channels=6, in_index=[0, 1])
    logits = head([torch.randn(2, 4, 8, 8), torch.randn(2, 8, 2, 2)])
    assert logits.shape == (2, 3, 8, 8)
    with pytest.raises(ShapeError, match=r"masks: expected Long\[2, 8, 8\]"):
        head.losses(logits, torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(FormatError, match=r"model.head.num_classes"):
        head.losses(logits, torch.full((2, 8, 8), 3))
    with pytest.raises(ValueError, match="one entry per map"):
        FCNHead(in_channels=[4], num_classes=3, in_index=[0, 1])

    class TwoMaps(torch.nn.Module):
        in_channels = 3

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[:, :1].repeat(1, 4, 1, 1)[..., ::2, ::2], x.mean(1, keepdim=True).repeat(1, 8, 1, 1)[
                ..., ::4, ::4
            ]

    model = ImageSegmentor(TwoMaps(), head)
    images = torch.randn(2, 3, 16, 16)
    assert model(images).shape == (2, 3, 16, 16)
    assert [p.shape for p in model.predict(images)] == [(16, 16), (16, 16)]
    assert set(model.loss(images, torch.zeros(2, 16, 16, dtype=torch.long))) == {"loss_ce", "loss"}


def test_config_builds_and_learns_a_tiny_fixed_batch(manager):
    torch.manual_seed(0)
    config = load_config(
        CONFIG, ["model.head.num_classes=2", "class_names=[road, car]"], search_dirs=manager.config_dirs()
    )
    model = build(config.node("model"), kind="model", registry=manager.registry)
    assert isinstance(model, PointSegmentor)
    generator = torch.Generator().manual_seed(0)
    points = [torch.randn(64, 4, generator=generator), torch.randn(40, 4, generator=generator)]
    labels = [(cloud[:, 2] > 0).long() for cloud in points]  # "above ground" vs "ground"
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(25):
        loss = model.loss(points, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    model.eval()
    predicted = model.predict(points)
    accuracy = torch.cat([p == t for p, t in zip(predicted, labels)]).float().mean()
    assert accuracy > 0.9


def test_shipped_config_runs_on_a_real_kitti_scan(manager):
    config = load_config(CONFIG, search_dirs=manager.config_dirs())
    model = build(config.node("model"), kind="model", registry=manager.registry)
    scan = torch.from_numpy(np.fromfile(KITTI_SCAN, dtype=np.float32).reshape(-1, 4)[:20000])
    model.eval()
    (labels,) = model.predict([scan])
    assert labels.shape == (20000,)
    assert int(labels.min()) >= 0 and int(labels.max()) < 19
    with pytest.raises(ShapeError, match=r"labels\[0\]: expected Long\[20000\]"):
        model.loss([scan], [torch.zeros(5, dtype=torch.long)])


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_builds_its_model_and_metrics(manager, name):
    config = load_config(name, search_dirs=manager.config_dirs())
    model = build(config.node("model"), kind="model", registry=manager.registry)
    assert getattr(model, "task", None) in ("point_segmentation", "image_segmentation")
    metric = build(config.node("metrics.0"), kind="metric", registry=manager.registry)
    assert metric.confusion.num_classes == model.head.num_classes == len(config["class_names"])
