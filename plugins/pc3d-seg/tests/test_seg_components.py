"""seg plugin: PointNetEncoder, PointMLPSegHead, PointSegmentor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.config import build, load_config
from pc3d.errors import FormatError, ShapeError
from pc3d.plugin_manager import PluginManager
from pc3d_seg import PointMLPSegHead, PointNetEncoder, PointSegmentor

KITTI_SCAN = Path(__file__).resolve().parents[3] / "tests/data/kitti/training/velodyne/000004.bin"
CONFIG = "pointnet-tiny_semantickitti.yaml"


@pytest.fixture(scope="module")
def manager():
    return PluginManager(allow=["seg"], block=[]).load()


def test_registered_through_the_entry_point(manager):
    info = next(p for p in manager.loaded if p.distribution == "pc3d-seg")
    assert info.registered == {
        "backbone": ["PointNetEncoder"],
        "head": ["PointMLPSegHead"],
        "model": ["PointSegmentor"],
    }


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


def test_config_builds_and_learns_a_tiny_fixed_batch(manager):
    torch.manual_seed(0)
    config = load_config(CONFIG, ["model.head.num_classes=2"], search_dirs=manager.config_dirs())
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
    assert int(labels.min()) >= 0 and int(labels.max()) < 20
    with pytest.raises(ShapeError, match=r"labels\[0\]: expected Long\[20000\]"):
        model.loss([scan], [torch.zeros(5, dtype=torch.long)])
