"""Point-wise label files and class maps (pc3d.io.semseg) on the real SemanticKITTI, S3DIS and ScanNet samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pc3d.errors import FormatError
from pc3d.io.semseg import (
    S3DIS_CLASSES,
    S3DIS_LABEL_MAP,
    SCANNET_LABEL_MAP,
    SEMANTICKITTI_CLASSES,
    SEMANTICKITTI_LABEL_MAP,
    SEMANTICKITTI_LEARNING_MAP,
    SEMANTICKITTI_LEARNING_MAP_INV,
    LabelMap,
    raw_ids_for,
    read_indoor_points,
    read_point_labels,
    read_semantic_mask,
    read_semantickitti_labels,
    read_semantickitti_scan,
    write_point_labels,
)

DATA = Path(__file__).resolve().parents[1] / "data"
KITTI_SCAN = DATA / "semantickitti/sequences/00/velodyne/000000.bin"
KITTI_LABEL = DATA / "semantickitti/sequences/00/labels/000000.label"
S3DIS_POINTS = DATA / "s3dis/points/Area_1_office_2.bin"
S3DIS_MASK = DATA / "s3dis/semantic_mask/Area_1_office_2.bin"
SCANNET_POINTS = DATA / "scannet/points/scene0000_00.bin"
SCANNET_MASK = DATA / "scannet/semantic_mask/scene0000_00.bin"


def test_semantickitti_sample_maps_to_known_classes() -> None:
    points = read_semantickitti_scan(KITTI_SCAN)
    semantic, instance = read_semantickitti_labels(KITTI_LABEL, len(points))
    assert points.shape == (50, 4) and points.dtype == np.float32
    # Raw ids of this excerpt (see tests/data/README.md): 0, 50, 52, 70, 71, 80; no instances.
    assert dict(zip(*np.unique(semantic, return_counts=True))) == {0: 2, 50: 25, 52: 1, 70: 17, 71: 3, 80: 2}
    assert not instance.any()
    classes = SEMANTICKITTI_LABEL_MAP.apply(semantic, KITTI_LABEL)
    names = {
        SEMANTICKITTI_CLASSES[c] if c >= 0 else "ignored": int((classes == c).sum())
        for c in np.unique(classes)
    }
    # unlabeled (0) and other-structure (52) are ignored; building, vegetation, trunk, pole kept.
    assert names == {"ignored": 3, "building": 25, "vegetation": 17, "trunk": 3, "pole": 2}


def test_semantickitti_low_and_high_bits(tmp_path: Path) -> None:
    raw = np.array([(7 << 16) | 10, (1 << 16) | 252, 40], dtype="<u4")
    path = tmp_path / "x.label"
    raw.tofile(path)
    semantic, instance = read_semantickitti_labels(path)
    assert semantic.tolist() == [10, 252, 40] and instance.tolist() == [7, 1, 0]
    # moving-car joins car, road stays road
    assert SEMANTICKITTI_LABEL_MAP.apply(semantic, path).tolist() == [0, 0, 8]


def test_learning_map_is_the_official_one() -> None:
    assert len(SEMANTICKITTI_CLASSES) == 19 and len(SEMANTICKITTI_LEARNING_MAP) == 34
    # Every learning id but "unlabeled" goes back to a raw id that maps to it.
    for learning, raw in SEMANTICKITTI_LEARNING_MAP_INV.items():
        assert SEMANTICKITTI_LEARNING_MAP[raw] == learning
    assert SEMANTICKITTI_LEARNING_MAP[60] == SEMANTICKITTI_LEARNING_MAP[40]  # lane-marking -> road
    assert SEMANTICKITTI_LABEL_MAP.lut[[1, 52, 99]].tolist() == [
        -1,
        -1,
        -1,
    ]  # outlier, other-structure, other-object


def test_wrong_label_length_names_both_files(tmp_path: Path) -> None:
    path = tmp_path / "short.label"
    np.zeros(49, dtype="<u4").tofile(path)
    with pytest.raises(
        FormatError, match=r"short\.label: holds 49 label entries but its point cloud has 50 points"
    ):
        read_semantickitti_labels(path, 50)
    odd = tmp_path / "odd.label"
    odd.write_bytes(b"\0" * 7)
    with pytest.raises(
        FormatError, match=r"odd\.label: 7 bytes is not a whole number of 4-byte label entries"
    ):
        read_semantickitti_labels(odd)
    with pytest.raises(
        FormatError, match=r"Area_1_office_2\.bin: holds 100 semantic mask entries but its point cloud has 99"
    ):
        read_semantic_mask(S3DIS_MASK, 99)
    narrow = tmp_path / "int32_mask.bin"
    np.fromfile(S3DIS_MASK, dtype="<i8").astype("<i4").tofile(narrow)  # written as int32
    with pytest.raises(
        FormatError, match=r"its size fits 100 values of 4 bytes: semantic mask files hold int64 per point"
    ):
        read_semantic_mask(narrow, 100)
    with pytest.raises(FileNotFoundError, match="nothing.label"):
        read_semantickitti_labels(tmp_path / "nothing.label")


def test_out_of_range_and_unknown_ids_name_the_file() -> None:
    with pytest.raises(FormatError) as info:
        S3DIS_LABEL_MAP.apply(np.array([0, 13, 13, -2]), "room.bin")
    assert str(info.value) == (
        "room.bin: labels out of range: -2 (1 point), 13 (2 points); the S3DIS class map takes ids 0..12"
    )
    with pytest.raises(
        FormatError, match=r"scan\.label: label ids 12 \(1 point\) are not in the SemanticKITTI learning map"
    ):
        SEMANTICKITTI_LABEL_MAP.apply(np.array([10, 12]), "scan.label")
    with pytest.raises(FormatError, match=r"labels out of range: 300 \(1 point\)"):
        SEMANTICKITTI_LABEL_MAP.apply(np.array([300]), "scan.label")


def test_mismatched_class_maps() -> None:
    with pytest.raises(FormatError, match=r"raw id 3 maps to class 2, but the map has 2 classes"):
        LabelMap("my map", ("a", "b"), {0: 0, 3: 2}, max_raw=3)
    with pytest.raises(FormatError) as info:
        S3DIS_LABEL_MAP.check_class_names(
            [*S3DIS_CLASSES[:3], "pillar", *S3DIS_CLASSES[4:]], "data.train.dataset.class_names"
        )
    message = str(info.value)
    assert message.startswith("data.train.dataset.class_names: class names [")
    assert "first difference at index 3" in message and "mismatched class maps" in message
    S3DIS_LABEL_MAP.check_class_names(list(S3DIS_CLASSES), "ok")


def test_indoor_samples() -> None:
    points = read_indoor_points(S3DIS_POINTS)
    assert points.shape == (100, 6) and points[:, 3:].max() > 1.0  # colour 0..255
    s3dis = S3DIS_LABEL_MAP.apply(read_semantic_mask(S3DIS_MASK, len(points)), S3DIS_MASK)
    assert s3dis.min() == 0 and s3dis.max() == 12 and int((s3dis == 2).sum()) == 39  # 39 wall points
    scan = read_indoor_points(SCANNET_POINTS)
    raw = read_semantic_mask(SCANNET_MASK, len(scan))
    scannet = SCANNET_LABEL_MAP.apply(raw, SCANNET_MASK)
    # NYU40 ids not among the 20 benchmark classes (0, 15, 18, 22, 25, 38, 40) are ignored.
    ignored = np.isin(raw, [0, 15, 18, 22, 25, 38, 40])
    assert (scannet[ignored] == -1).all() and (scannet[~ignored] >= 0).all()
    assert scannet[raw == 39].tolist() == [19] * int((raw == 39).sum())  # otherfurniture
    with pytest.raises(
        FormatError, match=r"labels out of range: 41 \(1 point\); the ScanNet NYU40 class map takes ids 0..40"
    ):
        SCANNET_LABEL_MAP.apply(np.array([41]), SCANNET_MASK)


def test_point_label_outputs_round_trip(tmp_path: Path) -> None:
    labels = np.array([0, 12, 14, 17, 0])
    npy = write_point_labels(tmp_path / "out" / "a.npy", labels)
    assert read_point_labels(npy, 5).tolist() == labels.tolist()
    # .label with SemanticKITTI's classes holds raw ids (learning_map_inv), readable by its tools.
    raw_ids = raw_ids_for(SEMANTICKITTI_CLASSES)
    assert raw_ids is not None and raw_ids[:2] == [10, 11] and raw_ids_for(["a", "b"]) is None
    label = write_point_labels(tmp_path / "a.label", labels, raw_ids)
    assert np.fromfile(label, dtype="<u4").tolist() == [10, 50, 70, 80, 10]
    assert SEMANTICKITTI_LABEL_MAP.apply(read_point_labels(label), label).tolist() == labels.tolist()
    assert read_point_labels(write_point_labels(tmp_path / "b.label", labels)).tolist() == labels.tolist()
    with pytest.raises(FormatError, match=r"a\.npy: holds 5 labels but the point cloud has 4 points"):
        read_point_labels(npy, 4)
    with pytest.raises(FormatError, match=r"c\.txt: label outputs end in \.npy or \.label"):
        write_point_labels(tmp_path / "c.txt", labels)
    with pytest.raises(FormatError, match=r"c\.label: class 19 has no raw id \(19 given\)"):
        write_point_labels(tmp_path / "c.label", np.array([19]), raw_ids)
    with pytest.raises(FormatError, match=r"labels must be class indices >= 0 \(or -1: no label\), got -2"):
        write_point_labels(tmp_path / "c.npy", np.array([-2]))
    # -1: a point without a label: kept in .npy, SemanticKITTI's raw id 0 ("unlabeled") in .label.
    some = np.array([0, -1, 3])
    assert read_point_labels(write_point_labels(tmp_path / "d.npy", some)).tolist() == [0, -1, 3]
    written = np.fromfile(write_point_labels(tmp_path / "d.label", some, raw_ids), dtype="<u4")
    assert written.tolist() == [raw_ids[0], 0, raw_ids[3]]
    with pytest.raises(FormatError, match=r"d2\.label: 1 points have no label \(-1\).*write \.npy"):
        write_point_labels(tmp_path / "d2.label", some)
    np.save(tmp_path / "f.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(FormatError, match=r"f\.npy: expected a 1-D integer array"):
        read_point_labels(tmp_path / "f.npy")
