"""Reading KITTI label and result files for the evaluation: bad input is named by file and line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pc3d.errors import FormatError, ShapeError
from pc3d.evaluation.kitti_labels import (
    KittiEvalLabels,
    load_label_dirs,
    parse_kitti_labels,
    read_frame_ids,
    read_kitti_labels,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "label_2"
CAR = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"


def test_reads_real_kitti_labels() -> None:
    labels = read_kitti_labels(DATA / "000001.txt", detections=False)
    assert list(labels.name) == ["Truck", "Car", "Cyclist", "DontCare", "DontCare", "DontCare", "DontCare"]
    np.testing.assert_allclose(labels.bbox[1], [387.63, 181.54, 423.81, 203.12])
    np.testing.assert_allclose(labels.dimensions[0], [2.85, 2.63, 12.34])  # h, w, l as in file
    np.testing.assert_allclose(labels.location[2], [4.59, 1.32, 45.84])
    assert labels.occluded.tolist() == [0, 0, 3, -1, -1, -1, -1]
    assert labels.bbox.dtype == np.float64 and labels.score is None


def test_values_are_kept_in_float64_so_boundaries_compare_like_the_port() -> None:
    labels = parse_kitti_labels(CAR.replace("0.00 0", "0.15 0", 1), detections=False)
    # float32 would store 0.15000000596 and flip "truncation <= 0.15" (easy) to "too truncated"
    assert labels.truncated[0] == 0.15


def test_detection_score_and_case_insensitive_names() -> None:
    labels = parse_kitti_labels(f"{CAR} 0.93\n\ncar {CAR[4:]} 0.5\n", detections=True)
    assert list(labels.name) == ["Car", "Car"]
    assert labels.score.tolist() == [0.93, 0.5]


@pytest.mark.parametrize(
    ("text", "detections", "message"),
    [
        (f"{CAR}\nCar 0 0 0 1 2 3\n", False, "x.txt:2: expected 15 fields, found 7"),
        (CAR, True, "x.txt:1: expected 16 fields, found 15 (a detection needs its score"),
        (f"{CAR} 0.9", False, "x.txt:1: expected 15 fields, found 16 (ground truth has no score"),
        (CAR.replace("1.65 1.67", "-1.65 1.67"), False, "x.txt:1: negative size"),
        ("Bus" + CAR[3:], False, "x.txt:1: unknown class name 'Bus'"),
        (f"{CAR}\n" + CAR.replace("-0.65", "nan"), False, "x.txt:2: field 12 (x) is not finite"),
        (CAR.replace("587.01", "5x7"), False, "x.txt:1: field 5 (left) is not a number: '5x7'"),
        (CAR.replace("0.00 0", "0.00 0.5", 1), False, "x.txt:1: occluded must be an integer"),
        (
            "DontCare -1 -1 -10 1 2 3 4 -1 -1 -1 -1000 -1000 -1000 -10 0.5",
            True,
            "x.txt:1: DontCare is not a detection class",
        ),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(text: str, detections: bool, message: str) -> None:
    with pytest.raises(FormatError) as err:
        parse_kitti_labels(text, detections=detections, source="x.txt")
    assert message in str(err.value)


def test_dontcare_placeholders_are_accepted() -> None:
    labels = parse_kitti_labels(
        "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10", detections=False
    )
    assert labels.name.tolist() == ["DontCare"]


def test_record_validation() -> None:
    good = parse_kitti_labels(CAR, detections=False)
    # dataclasses.replace builds a new record through the constructor, so it checks the fields.
    with pytest.raises(ShapeError, match="bbox has shape"):
        replace(good, bbox=good.bbox[:, :3])
    with pytest.raises(FormatError, match="unknown class name 'Bus'"):
        replace(good, name=np.array(["Bus"]))
    with pytest.raises(FormatError, match="score is not finite"):
        replace(good, score=np.array([np.nan]))
    assert len(KittiEvalLabels.empty(detections=True)) == 0


def test_load_label_dirs_matches_frames_and_treats_a_missing_result_as_empty(tmp_path: Path) -> None:
    gt_dir, det_dir = tmp_path / "gt", tmp_path / "det"
    gt_dir.mkdir()
    det_dir.mkdir()
    for frame in ("000001", "000002", "000003"):
        (gt_dir / f"{frame}.txt").write_text(CAR + "\n")
    (det_dir / "000001.txt").write_text(CAR + " 0.9\n")
    (det_dir / "000003.txt").write_text("")  # a frame without detections
    (det_dir / "000099.txt").write_text(CAR + " 0.9\n")  # no ground truth: ignored
    dirs = load_label_dirs(gt_dir, det_dir)
    assert dirs.ids == ["000001", "000002", "000003"]
    assert [len(d) for d in dirs.dets] == [1, 0, 0] and all(d.is_detection for d in dirs.dets)
    assert [len(g) for g in dirs.gts] == [1, 1, 1]
    assert dirs.missing_dets == ["000002"] and dirs.unmatched_dets == ["000099.txt"]
    split = tmp_path / "val.txt"
    split.write_text("000003\n\n000001\n")
    dirs = load_label_dirs(gt_dir, det_dir, read_frame_ids(split))
    assert dirs.ids == ["000003", "000001"] and [len(d) for d in dirs.dets] == [0, 1]
    split.write_text("000004\n")
    with pytest.raises(FileNotFoundError, match="ground truth for frame '000004'"):
        load_label_dirs(gt_dir, det_dir, read_frame_ids(split))
    split.write_text("../x\n")
    with pytest.raises(FormatError, match="val.txt:1: not a frame id"):
        read_frame_ids(split)
    (det_dir / "000003.txt").write_text(CAR + "\n")
    with pytest.raises(FormatError, match=r"det/000003\.txt:1: expected 16 fields"):
        load_label_dirs(gt_dir, det_dir)


def test_records_of_pc3d_io_are_accepted_with_their_file_values(tmp_path: Path) -> None:
    from pc3d.evaluation import kitti_eval
    from pc3d.evaluation.kitti_labels import from_io_labels
    from pc3d.io.kitti import read_kitti_labels as read_io

    gt_file = tmp_path / "gt.txt"
    gt_file.write_text(CAR.replace("0.00 0", "0.15 0", 1) + "\n")
    det_file = tmp_path / "det.txt"
    det_file.write_text(CAR + " 0.8\n")
    io_gt, io_det = read_io(gt_file), read_io(det_file)
    assert io_gt.truncated.dtype == np.float32 and float(io_gt.truncated[0]) > 0.15
    converted = from_io_labels(io_gt, detections=False)
    assert converted.truncated[0] == 0.15  # the file's value, so the box stays "easy"
    ours = kitti_eval([read_kitti_labels(gt_file, False)], [read_kitti_labels(det_file, True)])
    theirs = kitti_eval([io_gt], [io_det])
    assert ours.to_dict() == theirs.to_dict()
    with pytest.raises(FormatError, match=r"gt\.txt:1: a detection needs its score"):
        kitti_eval([io_gt], [io_gt])
