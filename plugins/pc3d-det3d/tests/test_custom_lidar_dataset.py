"""det3d's CustomLidarDataset on the shipped KITTI frames converted to pc3d's custom LiDAR format,
built from the config example of docs/datasets.md and trained with `pc3d train`."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from det3d_training import KITTI_ROOT, SMALL_ANCHORS, SMALL_PILLARS

from pc3d.cli import main
from pc3d.config import build, load_config
from pc3d.data.custom import kitti_to_custom
from pc3d.errors import FormatError
from pc3d.io.kitti import load_kitti_frame
from pc3d.plugin_manager import reset_plugin_manager
from pc3d.structures import LiDARBoxes3D, LiDARPoints
from pc3d_det3d.datasets import CustomLidarDataset, KittiDataset

REPO = Path(__file__).resolve().parents[3]
#: The model's label order (the zoo's); kitti_to_custom writes Car, Pedestrian, Cyclist.
CLASSES = ["Pedestrian", "Cyclist", "Car"]


def docs_config() -> str:
    """The config example under "Training on it" in docs/datasets.md."""
    text = (REPO / "docs" / "datasets.md").read_text()
    section = text[text.index("### Training on it: `CustomLidarDataset`") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match
    return match.group(1)


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four shipped KITTI frames in the custom format: train 000000-000002; val all four, so
    that each class has an object there (Map3DMetric reports NaN for a class without one)."""
    with pytest.warns(UserWarning, match="ImageSets does not exist"):  # the shipped frames have none
        root = kitti_to_custom(KITTI_ROOT, tmp_path_factory.mktemp("data") / "custom")
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / "train.txt").write_text("000000\n000001\n000002\n")
    (root / "splits" / "val.txt").write_text("000000\n000001\n000002\n000004\n")
    return root


def test_samples_match_kitti_dataset_relabelled_in_the_models_order(custom_root: Path) -> None:
    dataset = CustomLidarDataset(str(custom_root), class_names=CLASSES)
    kitti = KittiDataset(str(KITTI_ROOT), class_names=CLASSES)
    assert dataset.frame_ids == kitti.frame_ids == ["000000", "000001", "000002", "000004"]
    for index, frame_id in enumerate(dataset.frame_ids):
        item, expected = dataset[index], kitti[index]
        assert {"points", "gt_boxes", "gt_labels", "frame_id"} <= set(item)
        assert item["frame_id"] == frame_id
        assert isinstance(item["points"], LiDARPoints) and isinstance(item["gt_boxes"], LiDARBoxes3D)
        assert item["points"].attribute_dims == {"intensity": 3}
        assert torch.equal(item["points"].tensor, expected["points"].tensor)
        assert item["gt_labels"].dtype == torch.long
        assert item["gt_labels"].tolist() == expected["gt_labels"].tolist()
        torch.testing.assert_close(item["gt_boxes"].tensor, expected["gt_boxes"].tensor, atol=1e-3, rtol=0)
    # A subset keeps its own order; other classes are dropped and counted.
    cars = CustomLidarDataset(str(custom_root), class_names=["Car"], split="val")
    assert cars.frame_ids[3] == "000004" and cars[3]["gt_labels"].tolist() == [0, 0]
    subset = CustomLidarDataset(str(custom_root), class_names=["Car", "Pedestrian"], split="train")
    assert subset.dropped_classes.get("Cyclist", 0) > 0
    frame = load_kitti_frame(KITTI_ROOT / "training", "000001")
    assert frame.labels is not None
    types = frame.labels.objects().types
    assert [["Car", "Pedestrian"][i] for i in subset[1]["gt_labels"].tolist()] == [
        t for t in types if t in ("Car", "Pedestrian")
    ]


def test_range_filter_and_max_points_are_kitti_datasets(custom_root: Path) -> None:
    rng = [0.0, -10.0, -3.0, 30.0, 10.0, 1.0]
    dataset = CustomLidarDataset(str(custom_root), class_names=CLASSES, point_cloud_range=rng)
    kitti = KittiDataset(str(KITTI_ROOT), class_names=CLASSES, point_cloud_range=rng)
    for index in range(len(dataset)):
        item, expected = dataset[index], kitti[index]
        assert torch.equal(item["points"].tensor, expected["points"].tensor)
        assert item["gt_labels"].tolist() == expected["gt_labels"].tolist()
    assert len(CustomLidarDataset(str(custom_root), class_names=CLASSES, max_points=100)[0]["points"]) == 100


def test_errors_name_the_key(custom_root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        FormatError,
        match=r"class_names lists 'Cra', .*\(did you mean 'Car'\?\).*lists classes: Car, Pedestrian, Cyclist",
    ):
        CustomLidarDataset(str(custom_root), class_names=["Cra"])
    with pytest.raises(FormatError, match="class_names lists 'Van', which is not a class of the data set"):
        CustomLidarDataset(str(custom_root), class_names=["Car", "Van"])
    with pytest.raises(FormatError, match="class_names lists Car more than once"):
        CustomLidarDataset(str(custom_root), class_names=["Car", "Car"])
    with pytest.raises(FormatError, match="CustomLidarDataset: point_cloud_range must be 6 finite numbers"):
        CustomLidarDataset(str(custom_root), class_names=CLASSES, point_cloud_range=[0, 0, 0, 1, 1])
    with pytest.raises(FormatError, match="CustomLidarDataset: nan_policy must be 'drop' or 'raise'"):
        CustomLidarDataset(str(custom_root), class_names=CLASSES, nan_policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"split 'test'.*splits here: \['all', 'train', 'val'\]"):
        CustomLidarDataset(str(custom_root), class_names=CLASSES, split="test")
    with pytest.raises(FileNotFoundError, match="dataset.yaml does not exist"):
        CustomLidarDataset(str(tmp_path), class_names=CLASSES)


def test_nan_points_are_dropped_with_a_warning_or_raise_naming_the_file(
    custom_root: Path, tmp_path: Path
) -> None:
    import shutil

    from pc3d.io.points import NonFinitePointsWarning

    root = Path(shutil.copytree(custom_root, tmp_path / "custom"))
    scan = root / "points" / "000004.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
    points[5, 2] = np.nan
    points.tofile(scan)
    with pytest.warns(NonFinitePointsWarning, match="nan_policy: raise"):
        assert len(CustomLidarDataset(str(root), CLASSES, split="val")[3]["points"]) == len(points) - 1
    dataset = CustomLidarDataset(str(root), CLASSES, split="val", nan_policy="raise")
    with pytest.raises(FormatError, match=re.escape(str(scan)) + r": 1 of \d+ points have NaN"):
        dataset[3]


def test_use_dims_keeps_the_columns_the_model_reads(custom_root: Path, tmp_path: Path) -> None:
    """Frames stored as ROS-style PCDs (x y z ring intensity timestamp) train a 4-feature model
    through use_dims; the samples are those of the .bin frames."""
    import shutil

    from pc3d.io.points import write_point_file

    root = Path(shutil.copytree(custom_root, tmp_path / "ros"))
    for scan in sorted((root / "points").glob("*.bin")):
        kitti = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
        ring, stamp = np.arange(len(kitti)) % 64, np.linspace(0, 0.1, len(kitti))
        columns = np.column_stack([kitti[:, :3], ring, kitti[:, 3], stamp])
        write_point_file(scan.with_suffix(".pcd"), columns, ("x", "y", "z", "ring", "intensity", "timestamp"))
        scan.unlink()
    plain = CustomLidarDataset(str(custom_root), CLASSES, split="val")
    for use_dims in (["x", "y", "z", "intensity"], [0, 1, 2, 4]):
        dataset = CustomLidarDataset(str(root), CLASSES, split="val", use_dims=use_dims)
        for index in range(len(dataset)):
            points, expected = dataset[index]["points"], plain[index]["points"]
            assert points.attribute_dims == {"intensity": 3}
            assert torch.equal(points.tensor, expected.tensor)
    assert CustomLidarDataset(str(root), CLASSES, split="val")[0]["points"].tensor.shape[1] == 6
    first = root / "points" / "000000.pcd"
    with pytest.raises(
        FormatError, match=rf"{re.escape(str(first))}: no column 'intensty' \(did you mean 'intensity'\?\)"
    ):
        CustomLidarDataset(str(root), CLASSES, use_dims=["x", "y", "z", "intensty"])  # at construction


def test_pc3d_train_on_the_docs_config(
    custom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reset_plugin_manager()
    config_path = tmp_path / "my_pointpillars.yaml"
    config_path.write_text(docs_config())
    config = load_config(config_path, [f"data_root={custom_root}"])
    train = build(config.node("data.train.dataset"), kind="dataset")
    val = build(config.node("data.val.dataset"), kind="dataset")
    assert isinstance(train, CustomLidarDataset) and isinstance(val, CustomLidarDataset)
    assert train.frame_ids == ["000000", "000001", "000002"] and len(val) == 4
    assert train.class_names == val.class_names == CLASSES and len(train.pipeline) == 5
    assert config["metrics"] == [{"type": "Map3DMetric", "class_names": CLASSES}]

    work = tmp_path / "work"
    small = [
        f"data_root={custom_root}",
        *SMALL_PILLARS,
        SMALL_ANCHORS,
        "schedule.epochs=1",
        "data.train.batch_size=2",
        "data.train.num_workers=0",
        "data.val.num_workers=0",
        "data.train.dataset.max_points=4000",
        "runtime.num_threads=1",
        "runtime.device=cpu",
    ]
    assert main(["train", str(config_path), "--work-dir", str(work), "--set", *small]) == 0
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses and all(math.isfinite(v) for v in losses)
    (evaluation,) = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    for name in (*CLASSES, "m"):
        for key in ("AP", "rec") if name != "m" else ("mAP", "mAR"):
            for threshold in ("0.25", "0.50"):
                metric = f"{name}_{key}_{threshold}" if name != "m" else f"{key}_{threshold}"
                assert metric in evaluation, (metric, sorted(evaluation))
                assert math.isfinite(evaluation[metric]) and 0.0 <= evaluation[metric] <= 1.0
