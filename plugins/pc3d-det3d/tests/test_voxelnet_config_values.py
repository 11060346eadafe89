"""The 3D detector configs write each value once, and VoxelDetector derives its head's counts.

The zoo configs (PointPillars, SECOND, CenterPoint) set ``class_names``, ``point_cloud_range`` and
``voxel_size`` in one file of their ``_base_`` chain; the head's ``num_classes`` and ``in_channels``
(anchor head and centre head alike) are not written at all: the detector takes them from
``class_names`` and its neck, and checks them where a config does give them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from pc3d.config import ConfigError, build, load_config
from pc3d.errors import FormatError
from pc3d_det3d.anchor_head import Anchor3DHead
from pc3d_det3d.center_head import CenterPointHead
from pc3d_det3d.voxelnet import VoxelDetector

REPO = Path(__file__).resolve().parents[3]
ZOO = sorted(
    p
    for folder in ("pointpillars", "second", "centerpoint")
    for p in (REPO / "configs" / folder).glob("*.yaml")
)
#: Keys whose value is written once along a config's ``_base_`` chain.
WRITTEN_ONCE = (
    ("class_names",),
    ("point_cloud_range",),
    ("voxel_size",),
    ("model", "bbox_head", "num_classes"),
    ("model", "bbox_head", "in_channels"),
)
POINTPILLARS = "pointpillars_hv-secfpn_kitti-3d-3class"
#: The zoo PointPillars with 8-channel layers, so that building it takes no time.
NARROW = [
    "model.voxel_encoder.feat_channels=[8]",
    "model.middle_encoder.in_channels=8",
    "model.backbone.in_channels=8",
    "model.backbone.layer_nums=[1, 1, 1]",
    "model.backbone.out_channels=[8, 8, 8]",
    "model.neck.in_channels=[8, 8, 8]",
    "model.neck.out_channels=[8, 8, 8]",
]


def chain(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """A config file and its bases, each file's raw YAML data, bases first."""
    data = yaml.safe_load(path.read_text())
    bases = data.get("_base_", [])
    files: list[tuple[Path, dict[str, Any]]] = []
    for base in [bases] if isinstance(bases, str) else bases:
        files += chain((path.parent / base).resolve())
    return [*files, (path, data)]


def literal_writes(path: Path, key: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(file, value)`` for every file of the chain that writes ``key`` other than by a reference."""
    writes = []
    for file, data in chain(path):
        value: Any = data
        for part in key:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and not (isinstance(value, str) and "${" in value):
            writes.append((file.relative_to(REPO).as_posix(), value))
    return writes


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_zoo_configs_write_each_value_once_along_their_base_chain(path: Path) -> None:
    for key in WRITTEN_ONCE:
        writes = literal_writes(path, key)
        values = [repr(value) for _, value in writes]
        # A second write must change the value (the small synthetic PointPillars' own range).
        assert len(values) == len(set(values)), (
            f"{'.'.join(key)} is written again with the same value: {writes}"
        )
    # The head's counts are the detector's, whichever the head.
    assert literal_writes(path, ("model", "bbox_head", "num_classes")) == []
    assert literal_writes(path, ("model", "bbox_head", "in_channels")) == []


@pytest.mark.parametrize(
    "name",
    [
        POINTPILLARS,
        "second_hv-secfpn_kitti-3d-3class",
        "centerpoint_pillar-secfpn_kitti-3d-3class",
        "centerpoint_voxel-secfpn_kitti-3d-3class",
    ],
)
def test_mmdetection3d_zoo_configs_write_range_voxel_size_and_classes_once(name: str) -> None:
    path = next(p for p in ZOO if p.stem == name)
    for key in WRITTEN_ONCE[:3]:
        assert len(literal_writes(path, key)) == 1, key


def test_the_detector_gives_the_anchor_head_its_class_and_channel_counts() -> None:
    config = load_config(POINTPILLARS)
    assert {"num_classes", "in_channels"}.isdisjoint(config.data["model"]["bbox_head"])
    model = build(config.node("model"), kind="model")
    assert isinstance(model, VoxelDetector) and isinstance(model.bbox_head, Anchor3DHead)
    assert (model.bbox_head.num_classes, model.bbox_head.in_channels) == (3, 384)
    # MMDetection3D's head shapes: 6 anchors (3 sizes x 2 rotations) per cell.
    shapes = {k: tuple(v.shape) for k, v in model.bbox_head.state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "conv_cls.weight": (18, 384, 1, 1),
        "conv_reg.weight": (42, 384, 1, 1),
        "conv_dir_cls.weight": (12, 384, 1, 1),
    }
    narrow = build(load_config(POINTPILLARS, NARROW).node("model"), kind="model")
    assert narrow.bbox_head.in_channels == 24  # follows the neck: 3 x 8
    given = build(
        load_config(POINTPILLARS, [*NARROW, "model.bbox_head.in_channels=24"]).node("model"), "model"
    )
    assert given.bbox_head.conv_cls.weight.shape == narrow.bbox_head.conv_cls.weight.shape


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.bbox_head.in_channels=32"],
            r"model\.bbox_head\.in_channels is 32 but model\.neck outputs 24 channels",
        ),
        (
            ["model.bbox_head.num_classes=2"],
            r"model\.class_names lists 3 classes but model\.bbox_head\.num_classes is 2",
        ),
        (
            ["class_names=[Pedestrian, Car]"],
            r"model\.bbox_head\.anchor_generator\.sizes has 3 sizes for 2 classes \(model\.class_names\)",
        ),
    ],
)
def test_counts_that_disagree_fail_at_build_naming_the_key(overrides: list[str], message: str) -> None:
    config = load_config(POINTPILLARS, [*NARROW, *overrides])
    with pytest.raises(ConfigError, match=message) as info:
        build(config.node("model"), kind="model")
    assert "pointpillars_hv-secfpn_kitti.yaml" in str(info.value)  # the model mapping's file


@pytest.mark.parametrize(
    ("name", "channels"),
    [("centerpoint_pillar-secfpn_kitti-3d-3class", 384), ("centerpoint_voxel-secfpn_kitti-3d-3class", 512)],
)
def test_the_detector_gives_the_centre_head_its_class_and_channel_counts(name: str, channels: int) -> None:
    config = load_config(name)
    assert {"num_classes", "in_channels"}.isdisjoint(config.data["model"]["bbox_head"])
    model = build(config.node("model"), kind="model")
    head = model.bbox_head
    assert isinstance(model, VoxelDetector) and isinstance(head, CenterPointHead) and head.is_complete
    assert (head.num_classes, head.in_channels, head.tasks) == (3, channels, [[0, 1], [2]])
    # The layers and their checkpoint names are those of a head given its counts.
    given = CenterPointHead(
        channels,
        3,
        point_cloud_range=config.data["point_cloud_range"],
        voxel_size=config.data["voxel_size"],
        tasks=[[0, 1], [2]],
    )
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in given.state_dict().items()}
    assert shapes["shared_conv.0.weight"] == (64, channels, 3, 3)
    assert shapes["task_heads.0.heatmap.3.weight"] == (2, 64, 3, 3)
    assert shapes["task_heads.1.heatmap.3.weight"] == (1, 64, 3, 3)
    # A count a config does give is checked, naming the key and the model mapping's file.
    wrong = load_config(name, ["model.bbox_head.in_channels=24"])
    with pytest.raises(
        ConfigError, match=rf"model\.bbox_head\.in_channels is 24 but model\.neck outputs {channels} channels"
    ) as info:
        build(wrong.node("model"), kind="model")
    assert f"{name}.yaml" in str(info.value)  # the model mapping's file


def test_centerpoint_head_channels_follow_a_narrower_neck() -> None:
    model = build(load_config("centerpoint_pillar-secfpn_kitti-3d-3class", NARROW).node("model"), "model")
    assert model.bbox_head.in_channels == 24
    assert model.bbox_head.shared_conv[0].weight.shape == (64, 24, 3, 3)


def test_an_anchor_head_without_counts_is_completed_once() -> None:
    settings = {
        "anchor_generator": {
            "ranges": [[0, -4, -1, 8, 4, -1]],
            "sizes": [[3.9, 1.6, 1.56]],
            "rotations": [0, 1.57],
        },
        "assigner": {"pos_iou_thr": 0.6, "neg_iou_thr": 0.45, "min_pos_iou": 0.45},
    }
    head = Anchor3DHead(**settings)
    assert not head.is_complete and not hasattr(head, "num_classes")
    with pytest.raises(FormatError, match="no layers yet"):
        head(torch.zeros(1, 8, 4, 4))
    head.complete(1, 8)
    assert head.is_complete and head(torch.zeros(1, 8, 4, 4)).cls_score.shape == (1, 2, 4, 4)
    head.complete(1, 8)  # the same counts again: nothing changes
    with pytest.raises(
        FormatError, match=r"model\.bbox_head\.in_channels is 8 but the detector gives the head 16"
    ):
        head.complete(1, 16)
    with pytest.raises(FormatError, match=r"model\.bbox_head\.num_classes must be at least 1"):
        Anchor3DHead(**settings).complete(0, 8)
