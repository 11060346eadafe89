"""The KITTI result as JSON data and as a file (through pc3d.io.jsonio), and labels built from
pc3d.io.kitti's parser without a second parser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pc3d.errors import FormatError
from pc3d.evaluation import kitti_eval
from pc3d.evaluation.kitti_labels import from_io_labels, read_kitti_labels
from pc3d.io.kitti import read_kitti_labels as read_io_labels

from .synth import random_frames

LABELS = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "label_2"


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_result_json_is_valid_with_null_for_missing_aos(tmp_path: Path) -> None:
    gts, dets = random_frames(np.random.default_rng(3), 6, max_gt=6, alpha=False)
    result = kitti_eval(gts, dets)
    assert not result.aos_computed
    data = result.to_dict()
    values = [
        v
        for sets in data.values()
        for metrics in sets.values()
        for diffs in metrics.values()
        for pair in diffs.values()
        for v in pair.values()
    ]
    assert all(v is None or type(v) is float for v in values)  # plain floats, not numpy scalars
    assert data["Car"]["strict"]["aos"]["easy"] == {"AP11": None, "AP40": None}
    path = result.write_json(tmp_path / "out" / "kitti.json")
    assert _strict_json(path.read_text()) == data and path.read_text().endswith("}\n")


def test_evaluation_labels_are_the_io_parser_records_in_float64() -> None:
    path = LABELS / "000001.txt"
    ours = read_kitti_labels(path, detections=False)
    io = read_io_labels(path, np.float64, scores=False)
    for mine, theirs in (
        ("truncated", "truncated"),
        ("alpha", "alpha"),
        ("bbox", "bbox2d"),
        ("dimensions", "dims_hwl"),
        ("location", "location"),
        ("rotation_y", "rotation_y"),
    ):
        assert getattr(io, theirs).dtype == np.float64
        assert np.array_equal(getattr(ours, mine), getattr(io, theirs)), mine
    assert ours.name.tolist() == io.types.tolist() and ours.source == str(path)
    assert from_io_labels(io, detections=False).bbox.tolist() == ours.bbox.tolist()


def test_records_of_the_wrong_kind_name_file_and_line(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59 0.5\n")
    record = read_io_labels(det)
    assert from_io_labels(record, detections=True).name.tolist() == ["Car"]  # canonical spelling
    with pytest.raises(FormatError, match=r"det\.txt:1: ground truth has no score field"):
        from_io_labels(record, detections=False)
