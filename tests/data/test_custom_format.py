"""The custom LiDAR format: reading, errors naming file and line, and the KITTI converter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pc3d.data.custom import CustomLidarLayout, kitti_to_custom, read_custom_labels, write_custom_labels
from pc3d.data.synthetic import write_synthetic_kitti
from pc3d.errors import FormatError

CLASSES = ["Car", "Pedestrian", "Cyclist"]


def _dataset(root: Path) -> Path:
    (root / "points").mkdir(parents=True)
    np.arange(40, dtype=np.float32).reshape(10, 4).tofile(root / "points" / "a.bin")
    np.save(root / "points" / "b.npy", np.ones((5, 4), dtype=np.float32))
    write_custom_labels(root / "labels" / "a.txt", np.array([[1, 2, -1, 4, 1.8, 1.5, 0.5]]), ["Car"])
    write_custom_labels(root / "labels" / "b.txt", np.zeros((0, 7)), [])
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a\nb\n")
    (root / "dataset.yaml").write_text(
        "classes: [Car, Pedestrian, Cyclist]\npoint_columns: [x, y, z, intensity]\n"
    )
    return root


def test_reads_frames_and_splits(tmp_path: Path) -> None:
    layout = CustomLidarLayout.open(_dataset(tmp_path / "d"))
    assert layout.frame_ids("train") == ["a", "b"] and layout.frame_ids() == ["a", "b"]
    a = layout.load_frame("a")
    assert a.points.tensor.shape == (10, 4) and a.gt_labels.tolist() == [0]
    assert a.gt_boxes.tensor[0].tolist() == pytest.approx([1, 2, -1, 4, 1.8, 1.5, 0.5])
    b = layout.load_frame("b")  # an empty label file: a frame without objects
    assert len(b.gt_boxes) == 0 and b.points.tensor.shape == (5, 4)
    with pytest.raises(FileNotFoundError, match="splits here: \\['train'\\]"):
        layout.frame_ids("val")


def test_label_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.txt"
    bad.write_text("1 2 3 4 5 6 0 Car\n1 2 3 4 5 6 0 Cra\n")
    with pytest.raises(FormatError, match=r"x\.txt:2: unknown class 'Cra' \(did you mean 'Car'\?\)"):
        read_custom_labels(bad, CLASSES)
    bad.write_text("1 2 3 4 5 6 Car\n")
    with pytest.raises(FormatError, match=r"x\.txt:1: expected 8 fields"):
        read_custom_labels(bad, CLASSES)
    bad.write_text("1 2 3 -4 5 6 0 Car\n")
    with pytest.raises(FormatError, match="positive sizes"):
        read_custom_labels(bad, CLASSES)
    (tmp_path / "dataset.yaml").write_text("classes: [Car]\npoint_colums: [x, y, z]\n")
    with pytest.raises(FormatError, match="point_columns"):
        CustomLidarLayout.open(tmp_path)
    (tmp_path / "dataset.yaml").write_text("classes: [car\n")  # one line naming file, line and column
    with pytest.raises(FormatError, match=r"dataset.yaml:2:1: invalid YAML: expected ',' or '\]'") as error:
        CustomLidarLayout.open(tmp_path)
    assert "\n" not in str(error.value)


def test_kitti_to_custom_round_trip(tmp_path: Path) -> None:
    from pc3d.io.kitti import load_kitti_frame

    kitti = write_synthetic_kitti(tmp_path / "kitti", scenes=3, seed=2)
    custom = kitti_to_custom(kitti, tmp_path / "custom")
    layout = CustomLidarLayout.open(custom)
    assert layout.frame_ids("trainval") == ["000000", "000001", "000002"]
    frame = layout.load_frame("000001")
    kitti_frame = load_kitti_frame(kitti / "training", "000001")
    assert kitti_frame.labels is not None
    objects = kitti_frame.labels.objects()
    expected = kitti_frame.labels.to_lidar_boxes(kitti_frame.calib).tensor.numpy()
    assert np.allclose(frame.gt_boxes.tensor.numpy(), expected, atol=1e-4)
    assert [CLASSES[i] for i in frame.gt_labels.tolist()] == list(objects.types)
    assert np.array_equal(frame.points.tensor.numpy(), kitti_frame.points.array[:, :4].astype(np.float32))


def test_kitti_to_custom_without_image_sets_writes_every_frame_as_one_split(tmp_path: Path) -> None:
    kitti = write_synthetic_kitti(tmp_path / "kitti", scenes=3, seed=2)
    for split in (kitti / "ImageSets").iterdir():
        split.unlink()
    (kitti / "ImageSets").rmdir()
    with pytest.warns(UserWarning, match=r"ImageSets does not exist: wrote every frame to splits/all.txt"):
        custom = kitti_to_custom(kitti, tmp_path / "custom")
    assert CustomLidarLayout.open(custom).frame_ids("all") == ["000000", "000001", "000002"]


def test_nan_points_are_dropped_with_a_warning_or_raise_naming_the_file(tmp_path: Path) -> None:
    from pc3d.io.points import NonFinitePointsWarning

    root = _dataset(tmp_path / "d")
    scan = root / "points" / "a.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
    points[2, 0] = np.inf
    points.tofile(scan)
    layout = CustomLidarLayout.open(root)
    with pytest.warns(NonFinitePointsWarning, match="dropped 1 of 10 points.*--nan-policy raise"):
        assert layout.load_frame("a").points.tensor.shape == (9, 4)
    with pytest.raises(FormatError, match=r"a\.bin: 1 of 10 points have NaN or infinite x/y/z"):
        layout.load_frame("a", nan_policy="raise")
