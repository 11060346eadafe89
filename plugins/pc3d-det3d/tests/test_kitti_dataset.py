"""det3d's KittiDataset on the KITTI frames shipped in tests/data, and its runnable config."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.cli import main
from pc3d.config import build, load_config
from pc3d.errors import FormatError
from pc3d.io.kitti import load_kitti_frame
from pc3d.plugin_manager import reset_plugin_manager
from pc3d.structures import LiDARBoxes3D, LiDARPoints
from pc3d_det3d import KittiDataset

REPO = Path(__file__).resolve().parents[3]
KITTI = REPO / "tests" / "data" / "kitti" / "training"
CLASSES = ["Car", "Pedestrian", "Cyclist"]
MINI = "pillar-center-tiny_kitti-mini-3class.yaml"


def expected_objects(frame_id: str) -> tuple[list[str], int]:
    """Class names of the 3-class objects in the frame's label file (parsed by hand) and the
    number of non-DontCare objects."""
    lines = (KITTI / "label_2" / f"{frame_id}.txt").read_text().split("\n")
    types = [line.split()[0] for line in lines if line.strip()]
    return [t for t in types if t in CLASSES], sum(t != "DontCare" for t in types)


def test_every_complete_frame_by_default_and_sample_contents():
    dataset = KittiDataset(str(KITTI), class_names=CLASSES)
    # 000003 and 000005 have labels and calibration but no scan.
    assert dataset.frame_ids == ["000000", "000001", "000002", "000004"]
    assert len(dataset) == 4
    for index, frame_id in enumerate(dataset.frame_ids):
        sample = dataset[index]
        assert sample["frame_id"] == frame_id
        raw = np.fromfile(KITTI / "velodyne" / f"{frame_id}.bin", dtype=np.float32).reshape(-1, 4)
        assert isinstance(sample["points"], LiDARPoints) and isinstance(sample["gt_boxes"], LiDARBoxes3D)
        assert sample["points"].attribute_dims == {"intensity": 3}
        assert sample["points"].tensor.dtype == torch.float32
        assert torch.equal(sample["points"].tensor, torch.from_numpy(raw))
        names, _ = expected_objects(frame_id)
        boxes = sample["gt_boxes"].tensor
        assert boxes.shape == (len(names), 7) and boxes.dtype == torch.float32
        assert sample["gt_labels"].dtype == torch.long
        assert [CLASSES[i] for i in sample["gt_labels"].tolist()] == names


def test_boxes_are_the_labels_in_the_lidar_frame():
    sample = KittiDataset(str(KITTI), class_names=CLASSES, split=["000001"])[0]
    frame = load_kitti_frame(KITTI, "000001")
    objects = frame.labels.objects()
    keep = np.isin(objects.types, CLASSES)
    assert keep.sum() < len(objects)  # this frame has other classes (e.g. Truck) to drop
    expected = frame.labels.to_lidar_boxes(frame.calib).tensor[torch.from_numpy(keep)]
    torch.testing.assert_close(sample["gt_boxes"].tensor, expected.float())
    # LiDAR convention (z up, bottom centre): the boxes hold scan points, and a car's bottom is
    # near the ground, about 1.7 m below the sensor.
    inside = sample["gt_boxes"].points_in_boxes_all(sample["points"]).sum(dim=0)
    assert (inside > 0).all(), inside
    cars = sample["gt_boxes"].tensor[sample["gt_labels"] == 0]
    assert len(cars) and ((cars[:, 2] > -2.2) & (cars[:, 2] < -1.2)).all(), cars[:, 2]


def test_class_subset_relabels_and_drops_others():
    both = KittiDataset(str(KITTI), class_names=["Cyclist", "Car"], split=["000001"])[0]
    names, _ = expected_objects("000001")
    assert [["Cyclist", "Car"][i] for i in both["gt_labels"].tolist()] == [
        n for n in names if n in ("Cyclist", "Car")
    ]
    trucks = KittiDataset(str(KITTI), class_names=["Truck"], split=["000001"])[0]
    assert trucks["gt_labels"].tolist() == [0] * len(trucks["gt_boxes"])


def test_split_file_list_and_ints(tmp_path, monkeypatch):
    split = tmp_path / "train.txt"
    split.write_text("000004\n\n000000\n")
    assert KittiDataset(str(KITTI), class_names=CLASSES, split=str(split)).frame_ids == ["000004", "000000"]
    assert KittiDataset(str(KITTI), class_names=CLASSES, split=[2, "000001"]).frame_ids == [
        "000002",
        "000001",
    ]
    # Relative root and split file: resolved against the current directory.
    monkeypatch.chdir(KITTI.parent)
    dataset = KittiDataset("training", class_names=CLASSES, split=str(split))
    assert dataset.root == KITTI and len(dataset[0]["points"]) > 0


def test_range_filter_and_max_points():
    pcr = [0.0, -10.0, -3.0, 50.0, 10.0, 1.0]  # keeps the cyclist at x 46, drops the car at x 59
    full = KittiDataset(str(KITTI), class_names=CLASSES, split=["000001"])[0]
    cut = KittiDataset(str(KITTI), class_names=CLASSES, split=["000001"], point_cloud_range=pcr)[0]
    low, high = torch.tensor(pcr[:3]), torch.tensor(pcr[3:])
    # MMDetection3D's PointsRangeFilter and ObjectRangeFilter: strictly inside, boxes by the
    # (x, y) of their bottom centre.
    points = full["points"].tensor
    inside = ((points[:, :3] > low) & (points[:, :3] < high)).all(dim=1)
    assert torch.equal(cut["points"].tensor, points[inside]) and 0 < len(cut["points"]) < len(points)
    centres = full["gt_boxes"].tensor[:, :2]
    keep = ((centres > low[:2]) & (centres < high[:2])).all(dim=1)
    assert 0 < int(keep.sum()) < len(keep)
    assert torch.equal(cut["gt_boxes"].tensor, full["gt_boxes"].tensor[keep])
    assert torch.equal(cut["gt_labels"], full["gt_labels"][keep])

    sub = KittiDataset(
        str(KITTI), class_names=CLASSES, split=["000001"], point_cloud_range=pcr, max_points=500
    )
    torch.manual_seed(0)
    a = sub[0]["points"].tensor
    torch.manual_seed(0)
    b = sub[0]["points"].tensor
    assert a.shape == (500, 4) and torch.equal(a, b)  # drawn from torch's (seeded) generator
    rows = {tuple(r) for r in cut["points"].tensor.tolist()}
    assert all(tuple(r) in rows for r in a.tolist())


def test_range_filter_on_the_boundary_and_box_heights():
    """A box whose bottom centre lies on the range's BEV edge is dropped (strict, as
    MMDetection3D's in_range_bev); a box far above or below the z range is kept (only x, y count)."""
    full = KittiDataset(str(KITTI), class_names=CLASSES, split=["000001"])[0]
    x, y, z = (float(v) for v in full["gt_boxes"].tensor[0, :3])
    on_edge = KittiDataset(
        str(KITTI), class_names=CLASSES, split=["000001"], point_cloud_range=[x, -80, -3, 80, 80, 1]
    )[0]
    assert not any(torch.equal(row, full["gt_boxes"].tensor[0]) for row in on_edge["gt_boxes"].tensor)
    high = KittiDataset(
        str(KITTI), class_names=CLASSES, split=["000001"], point_cloud_range=[0, -80, z + 5, 80, 80, z + 9]
    )[0]
    keep = (full["gt_boxes"].tensor[:, 0] > 0) & (full["gt_boxes"].tensor[:, 0] < 80)
    assert torch.equal(high["gt_boxes"].tensor, full["gt_boxes"].tensor[keep])


def test_collate_keeps_lists_per_key():
    dataset = KittiDataset(str(KITTI), class_names=CLASSES, split=["000000", "000001"])
    batch = KittiDataset.collate([dataset[0], dataset[1]])
    assert set(batch) == {
        "points",
        "gt_boxes",
        "gt_labels",
        "frame_id",
        "difficulty",
        "kitti_labels",
        "calib",
    }
    assert batch["frame_id"] == ["000000", "000001"]
    assert [len(p) for p in batch["points"]] == [len(dataset[0]["points"]), len(dataset[1]["points"])]


def test_errors_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"'nowhere/training' \(resolved to " + str(tmp_path) + r".*\) is neither a KITTI root",
    ):
        KittiDataset("nowhere/training", class_names=CLASSES)
    with pytest.raises(
        FileNotFoundError, match=r"frame '000003' \(from split\) has no .*velodyne/000003.bin"
    ):
        KittiDataset(str(KITTI), class_names=CLASSES, split=["000001", "000003"])
    with pytest.raises(FileNotFoundError, match=r"split 'ImageSets/train.txt' is neither .* nor a file"):
        KittiDataset(str(KITTI), class_names=CLASSES, split="ImageSets/train.txt")
    with pytest.raises(
        FormatError, match=r"unknown class 'Pedestrain' in class_names \(did you mean 'Pedestrian'\?\)"
    ):
        KittiDataset(str(KITTI), class_names=["Car", "Pedestrain"])
    with pytest.raises(FormatError, match="class_names lists Car more than once"):
        KittiDataset(str(KITTI), class_names=["Car", "Car"])
    with pytest.raises(FormatError, match="point_cloud_range must be 6 finite numbers"):
        KittiDataset(str(KITTI), class_names=CLASSES, point_cloud_range=[0, 0, 0, 1, 1])
    with pytest.raises(FormatError, match="max_points must be at least 1"):
        KittiDataset(str(KITTI), class_names=CLASSES, max_points=0)
    (tmp_path / "empty" / "velodyne").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no frame in .*empty has all of"):
        KittiDataset("empty", class_names=CLASSES)


def test_registered_and_built_from_the_runnable_config(monkeypatch):
    monkeypatch.chdir(REPO)  # the config's root is relative to the repository
    reset_plugin_manager()
    config = load_config(MINI)
    dataset = build(config.node("data.train.dataset"), kind="dataset")
    assert isinstance(dataset, KittiDataset) and dataset.root == KITTI
    assert dataset.frame_ids == ["000000", "000001", "000002"]
    assert dataset.class_names == CLASSES and dataset.point_cloud_range is not None
    val = build(config.node("data.val.dataset"), kind="dataset")
    assert val.root == KITTI and val.frame_ids == ["000004"]  # held out from training


# Split names whose frame lists are disjoint by definition: KITTI's ImageSets/train.txt and val.txt
# (3712 / 3769 frames), and the train.txt / val.txt that `pc3d data synth` writes.
DISJOINT_SPLIT_NAMES = {("train", "val")}


def kitti_configs() -> list[Path]:
    """The model configs under configs/ (not their _base_ parts) that train on KittiDataset."""
    found = []
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        if "_base_" in path.relative_to(REPO / "configs").parts:
            continue
        if load_config(path).get("data.train.dataset.type", None) == "KittiDataset":
            found.append(path)
    return found


def split_frames(dataset: dict) -> tuple[Path, frozenset[str] | str]:
    """A KittiDataset config's training folder and its frames: the frame ids when its root is in
    the repository (read by KittiDataset itself, so ``null`` is every frame), else the split name."""
    root = Path(os.path.abspath(dataset["root"]))
    if (root / "velodyne").is_dir() or (root / "training" / "velodyne").is_dir():
        frames = KittiDataset(dataset["root"], class_names=dataset["class_names"], split=dataset["split"])
        return frames.root, frozenset(frames.frame_ids)
    split = dataset["split"]
    if isinstance(split, list):
        return root, frozenset(f"{i:06d}" if isinstance(i, int) else str(i) for i in split)
    assert isinstance(split, str), f"{dataset['root']}: split {split!r} reads every frame"
    return root, split


@pytest.mark.parametrize("path", kitti_configs(), ids=lambda p: p.stem)
def test_kitti_configs_validate_on_frames_they_do_not_train_on(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the configs' relative roots are relative to the repository
    reset_plugin_manager()
    config = load_config(path)
    train_root, train = split_frames(config["data.train.dataset"])
    for part in ("val", "test"):
        dataset = config.get(f"data.{part}.dataset", None)
        if dataset is None:
            continue
        root, held_out = split_frames(dataset)
        assert root == train_root, f"{path.name}: data.{part} reads {root}, training reads {train_root}"
        if isinstance(train, str) or isinstance(held_out, str):
            assert (train, held_out) in DISJOINT_SPLIT_NAMES, (
                f"{path.name}: train {train!r}, {part} {held_out!r}"
            )
        else:
            assert train and held_out and train.isdisjoint(held_out), (
                f"{path.name}: data.{part} shares frames {sorted(train & held_out)} with data.train"
            )


def test_every_shipped_kitti_detection_config_is_checked_for_disjoint_splits():
    names = {path.stem for path in kitti_configs()}
    assert {
        "pillar-center-tiny_kitti-mini-3class",
        "pointpillars_hv-secfpn_kitti-3d-3class",
        "second_hv-secfpn_kitti-3d-3class",
        "centerpoint_pillar-secfpn_kitti-3d-3class",
        "centerpoint_voxel-secfpn_kitti-3d-3class",
        "pointpillars-small_hv-secfpn_synthetic-3d-3class",
    } <= names


def test_pc3d_train_runs_the_mini_config(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    reset_plugin_manager()
    work = tmp_path / "work"
    shorten = [
        "schedule.epochs=1",
        "data.train.dataset.max_points=3000",
        "data.val.dataset.max_points=3000",
        "runtime.num_threads=1",
    ]
    assert main(["train", MINI, "--work-dir", str(work), "--set", *shorten]) == 0
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert train and all(math.isfinite(r["loss"]) for r in train)
    evaluation = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert len(evaluation) == 1
    # The official KITTI protocol: AP in percent for each class, view, difficulty and overlap set.
    kitti = {key: value for key, value in evaluation[0].items() if key.startswith("KITTI/")}
    for cls in CLASSES:
        for view in ("2D", "BEV", "3D", "AOS"):
            for difficulty in ("easy", "moderate", "hard"):
                for overlap in ("strict", "loose"):
                    for ap in ("AP11", "AP40"):
                        key = f"KITTI/{cls}_{view}_{ap}_{difficulty}_{overlap}"
                        assert key in kitti, key
    assert len(kitti) == len(CLASSES) * 4 * 3 * 2 * 2
    assert all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 100.0 for v in kitti.values())
    assert (work / "epoch_1.pth").is_file() and (work / "best.pth").is_file()


def test_kitti_root_imagesets_difficulty_fov_and_pipeline(tmp_path):
    from pc3d.data.synthetic import write_synthetic_kitti
    from pc3d.data.transforms import RandomFlip3D
    from pc3d.evaluation.kitti_protocol import kitti_difficulty
    from pc3d.io.kitti import read_kitti_labels

    root = write_synthetic_kitti(tmp_path / "synth", scenes=5, seed=3, val_fraction=0.4)
    train = KittiDataset(str(root), class_names=CLASSES, split="train")  # a KITTI root and a split name
    val = KittiDataset(str(root / "training"), class_names=CLASSES, split="val")
    assert train.frame_ids == (root / "ImageSets" / "train.txt").read_text().split()
    assert set(train.frame_ids).isdisjoint(val.frame_ids) and len(train) + len(val) == 5
    item = train[0]
    labels = read_kitti_labels(
        root / "training" / "label_2" / f"{train.frame_ids[0]}.txt", dtype=np.float64
    ).objects()
    keep = np.isin(labels.types, CLASSES)
    height = labels.bbox2d[:, 3] - labels.bbox2d[:, 1]
    assert (
        item["difficulty"].tolist()
        == kitti_difficulty(height, labels.occluded, labels.truncated)[keep].tolist()
    )
    assert len(item["kitti_labels"]) >= len(item["gt_boxes"])  # DontCare regions are kept for evaluation
    # Field of view: every kept point projects into the 1242 x 375 image of camera 2.
    fov = KittiDataset(str(root), class_names=CLASSES, split="train", remove_outside_fov=True)[0][
        "points"
    ].tensor
    homo = fov[:, :3].double() @ torch.from_numpy(item["calib"].lidar_to_img[:3, :3]).T + torch.from_numpy(
        item["calib"].lidar_to_img[:3, 3]
    )
    uv = homo[:, :2] / homo[:, 2:3]
    assert 0 < len(fov) < len(item["points"]) and bool((homo[:, 2] > 0).all())
    assert float(uv[:, 0].min()) >= 0 and float(uv[:, 0].max()) < 1242 and float(uv[:, 1].max()) < 375
    flipped = KittiDataset(str(root), class_names=CLASSES, split="train", pipeline=[RandomFlip3D(1.0)])[0]
    assert torch.allclose(flipped["gt_boxes"].tensor[:, 1], -item["gt_boxes"].tensor[:, 1])


def test_label_typos_are_errors_and_other_classes_are_counted(tmp_path):
    import shutil

    root = tmp_path / "training"
    shutil.copytree(KITTI, root)
    label = root / "label_2" / "000001.txt"
    lines = label.read_text().splitlines()
    lines[1] = "Cra" + lines[1][len(lines[1].split()[0]) :]
    label.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        FormatError, match=r"000001\.txt:2: unknown KITTI type 'Cra' \(did you mean 'Car'\?\)"
    ):
        KittiDataset(str(root), class_names=CLASSES)
    label.write_text("Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67\n")
    with pytest.raises(FormatError, match=r"000001\.txt:1"):
        KittiDataset(str(root), class_names=CLASSES)
    shutil.copy(KITTI / "label_2" / "000001.txt", label)
    dataset = KittiDataset(str(root), class_names=["Pedestrian"])
    assert dataset.dropped_classes.get("Car", 0) > 0


def test_a_frame_without_points_or_objects_is_valid(tmp_path):
    import shutil

    root = tmp_path / "training"
    shutil.copytree(KITTI, root)
    (root / "velodyne" / "000001.bin").write_bytes(b"")
    (root / "label_2" / "000001.txt").write_text("")
    item = KittiDataset(str(root), class_names=CLASSES, split=["000001"])[0]
    assert len(item["points"]) == 0 and len(item["gt_boxes"]) == 0 and item["gt_labels"].shape == (0,)


def test_nan_points_are_dropped_with_a_warning_or_raise_naming_the_file(tmp_path):
    import shutil

    from pc3d.io.points import NonFinitePointsWarning

    root = tmp_path / "training"
    shutil.copytree(KITTI, root)
    scan = root / "velodyne" / "000001.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
    points[[3, 7], 1] = np.nan
    points.tofile(scan)
    # Default: the two points are dropped, and the warning says how to stop instead everywhere.
    with pytest.warns(NonFinitePointsWarning) as caught:
        item = KittiDataset(str(root), class_names=CLASSES, split=["000001"])[0]
    assert len(item["points"]) == len(points) - 2
    message = str(caught[0].message)
    assert str(scan) in message and "dropped 2 of" in message
    assert "--nan-policy raise" in message and "nan_policy: raise" in message
    assert "nan_policy='raise'" in message
    dataset = KittiDataset(str(root), class_names=CLASSES, split=["000001"], nan_policy="raise")
    with pytest.raises(FormatError, match=re.escape(str(scan)) + r": 2 of \d+ points have NaN"):
        dataset[0]
    with pytest.raises(FormatError, match=r"KittiDataset: nan_policy must be 'drop' or 'raise', got 'keep'"):
        KittiDataset(str(root), class_names=CLASSES, nan_policy="keep")
