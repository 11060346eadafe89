"""Box files (JSON, CSV, TXT, .npy): round trips and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.errors import FormatError
from pc3d.io.boxes import BoxFile, load_boxes, read_box_file, save_boxes, write_box_file
from pc3d.structures import CameraBoxes3D, DepthBoxes3D, LiDARBoxes3D


def _boxes(n: int = 6, width: int = 9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    boxes = rng.normal(scale=10, size=(n, width)).astype(np.float32)
    boxes[:, 3:6] = np.abs(boxes[:, 3:6])
    return boxes


@pytest.mark.parametrize("suffix", [".json", ".csv", ".txt"])
def test_round_trip_with_labels_scores_and_extras(tmp_path: Path, suffix: str) -> None:
    boxes = _boxes()
    data = BoxFile(
        boxes,
        "camera",
        ["Car", "Pedestrian", "Car", "Cyclist", "Van", "Car"],
        np.linspace(0, 1, 6, dtype=np.float32),
    )
    back = read_box_file(write_box_file(tmp_path / f"b{suffix}", data))
    np.testing.assert_array_equal(back.boxes, boxes)  # float32 values survive the text exactly
    assert back.mode == "camera"
    assert back.labels == data.labels
    np.testing.assert_array_equal(back.scores, data.scores)


def test_npy_keeps_numbers_only(tmp_path: Path) -> None:
    boxes = _boxes(width=7)
    back = read_box_file(write_box_file(tmp_path / "b.npy", BoxFile(boxes, "lidar", ["a"] * 6)))
    np.testing.assert_array_equal(back.boxes, boxes)
    assert back.mode is None and back.labels is None
    with pytest.raises(FormatError, match="does not say which system"):
        load_boxes(tmp_path / "b.npy")
    assert isinstance(load_boxes(tmp_path / "b.npy", mode="depth"), DepthBoxes3D)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".txt", ".npy"])
def test_zero_boxes_are_valid(tmp_path: Path, suffix: str) -> None:
    path = save_boxes(tmp_path / f"empty{suffix}", LiDARBoxes3D(np.zeros((0, 7))), labels=[])
    back = load_boxes(path, mode="lidar")
    assert isinstance(back, LiDARBoxes3D) and back.tensor.shape == (0, 7)


def test_json_layout_and_structures(tmp_path: Path) -> None:
    boxes = CameraBoxes3D([[1.5, 2.0, 30.0, 3.9, 1.5, 1.6, -1.57]])
    path = save_boxes(
        tmp_path / "cam.json", boxes, labels=["Car"], scores=torch.tensor([0.75]), meta={"frame": "000001"}
    )
    content = json.loads(path.read_text())
    assert content == {
        "mode": "camera",
        "columns": ["x", "y", "z", "x_size", "y_size", "z_size", "yaw"],
        "boxes": [[1.5, 2.0, 30.0, 3.9, 1.5, 1.6, -1.57]],
        "labels": ["Car"],
        "scores": [0.75],
        "meta": {"frame": "000001"},
    }
    loaded = load_boxes(path)
    assert isinstance(loaded, CameraBoxes3D)
    torch.testing.assert_close(loaded.tensor, boxes.tensor)
    with pytest.raises(FormatError, match="holds camera boxes, but lidar was asked for"):
        load_boxes(path, mode="lidar")
    with pytest.raises(FormatError, match="mode='lidar' was given"):
        save_boxes(tmp_path / "x.json", boxes, mode="lidar")


def test_csv_without_header_and_with_mode_comment(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("# exported by hand\n# mode: Depth\n1,2,3,4,5,6,0.5\n\n7,8,9,1,1,1,0\n")
    data = read_box_file(path)
    assert data.mode == "depth" and data.labels is None
    np.testing.assert_array_equal(data.boxes, [[1, 2, 3, 4, 5, 6, 0.5], [7, 8, 9, 1, 1, 1, 0]])
    txt = tmp_path / "b.txt"
    txt.write_text("label x y z dx dy dz yaw\nCar 1 2 3 4 5 6 0.5\n")
    data = read_box_file(txt)
    assert data.labels == ["Car"] and data.mode is None
    np.testing.assert_array_equal(data.boxes, [[1, 2, 3, 4, 5, 6, 0.5]])


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "w.json",
            '{"mode": "lidar", "boxes": [[1, 2, 3, 4, 5, 6]]}',
            "6 values per row, expected at least 7",
        ),
        (
            "r.json",
            '{"mode": "lidar", "boxes": [[1,2,3,4,5,6,7], [1,2,3,4,5,6,7,8]]}',
            "box 1 has 8 values, box 0 has 7",
        ),
        (
            "n.json",
            '{"mode": "lidar", "boxes": [[1,2,3,4,5,6,7], [1,2,3,4,-5,6,7]]}',
            "box 1: negative size y_size = -5",
        ),
        (
            "m.json",
            '{"mode": "radar", "boxes": []}',
            "'radar' is not a box mode; valid modes are lidar, camera, depth",
        ),
        ("k.json", '{"mode": "lidar", "boxes": [], "label": []}', "unknown key(s) ['label']"),
        ("j.json", '{"mode": "lidar", "boxes": [[1,2,3,4,5,6,7]],}', "not valid JSON"),
        (
            "l.json",
            '{"mode": "lidar", "boxes": [[1,2,3,4,5,6,7]], "labels": ["a", "b"]}',
            "'labels' must be a list of 1 labels",
        ),
        ("s.json", '{"mode": "lidar", "boxes": [[1,2,3,4,5,6,"x"]]}', "not a number"),
        ("z.json", '{"boxes": []}', "no 'mode' key"),
        ("nan.json", '{"mode": "lidar", "boxes": [[1,2,NaN,4,5,6,7]]}', "box 0: z is nan"),
        ("w.csv", "x,y,z,dx,dy,dz\n1,2,3,4,5,6\n", "6 values per row, expected at least 7"),
        ("n.csv", "1,2,3,4,5,6,7\n1,2,3,4,5,-6,7\n", "line 2: negative size z_size = -6"),
        ("v.csv", "x,y,z,dx,dy,dz,yaw\n1,2,3,4,5,six,7\n", "line 2: dz value 'six' is not a number"),
        ("c.csv", "1,2,3,4,5,6,7\n1,2,3,4,5,6\n", "line 2 has 6 values, expected 7"),
        ("m.txt", "# mode: sideways\n1 2 3 4 5 6 7\n", "line 1: mode 'sideways' is not a box mode"),
        ("h.txt", "1 2 3 4 5 6 7 Car\n", "line 1 mixes numbers and text; a table with labels needs a header"),
        ("b.yaml", "boxes: []", "unknown box file extension '.yaml'"),
    ],
)
def test_bad_box_files(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        read_box_file(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


def test_bad_npy_boxes_and_bad_writes(tmp_path: Path) -> None:
    np.save(tmp_path / "narrow.npy", np.zeros((3, 5)))
    with pytest.raises(FormatError, match=r"narrow\.npy: boxes have 5 values per row, expected at least 7"):
        read_box_file(tmp_path / "narrow.npy")
    with pytest.raises(FormatError, match="2 labels for 1 boxes"):
        write_box_file(tmp_path / "o.json", BoxFile(_boxes(1), "lidar", ["a", "b"]))
    with pytest.raises(FormatError, match="cannot be written"):
        write_box_file(tmp_path / "o.txt", BoxFile(_boxes(1), "lidar", ["two words"]))
    with pytest.raises(FormatError, match="needs a mode"):
        write_box_file(tmp_path / "o.json", BoxFile(_boxes(1)))
    assert not list(tmp_path.glob("o.*"))


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_writes_non_finite_scores_as_null_in_the_row_per_line_layout(tmp_path: Path) -> None:
    data = BoxFile(
        _boxes(n=3, width=7),
        "lidar",
        ["Car", 2, "Van"],
        np.array([0.5, np.nan, np.inf], np.float32),
        meta={"frame": "000001", "gain": float("nan")},
    )
    path = write_box_file(tmp_path / "b.json", data)
    text = path.read_text()
    content = _strict_json(text)  # valid JSON: no bare NaN / Infinity
    assert isinstance(content, dict)
    assert content["scores"] == [0.5, None, None] and content["meta"] == {"frame": "000001", "gain": None}
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    box_lines = [line for line in lines if line.startswith("    [")]
    assert len(box_lines) == 3 and all(line.rstrip(",").endswith("]") for line in box_lines)  # one box a line
    back = read_box_file(path)
    np.testing.assert_array_equal(back.scores, [0.5, np.nan, np.nan])
    with pytest.raises(FormatError, match=r"b2\.json: meta key 'when': cannot write a"):
        write_box_file(tmp_path / "b2.json", BoxFile(_boxes(n=1, width=7), "lidar", meta={"when": object()}))


def test_pc3d_infer_predictions_read_as_a_box_file(tmp_path: Path) -> None:
    # What `pc3d infer` writes (MMDetection3D's result keys), labels named by class_names.
    boxes = [[10.0, 2.0, -1.6, 3.9, 1.6, 1.5, 0.3], [5.0, -1.0, -1.2, 0.8, 0.6, 1.7, 1.0]]
    path = tmp_path / "000001.json"
    path.write_text(
        json.dumps(
            {
                "box_mode": "lidar",
                "boxes_3d": boxes,
                "scores_3d": [0.9, 0.4],
                "labels_3d": [2, 0],
                "class_names": ["Pedestrian", "Cyclist", "Car"],
            }
        )
    )
    data = read_box_file(path)
    assert data.mode == "lidar" and data.labels == ["Car", "Pedestrian"]
    np.testing.assert_allclose(data.boxes, boxes, rtol=1e-6)
    np.testing.assert_allclose(data.scores, [0.9, 0.4], rtol=1e-6)
    assert data.meta["class_names"] == ["Pedestrian", "Cyclist", "Car"]
    # Converted like any box file: the same boxes in a table, the labels as names.
    write_box_file(tmp_path / "out.csv", data)
    assert read_box_file(tmp_path / "out.csv").labels == ["Car", "Pedestrian"]
    bad = {"box_mode": "lidar", "boxes_3d": boxes, "labels_3d": [3, 0], "class_names": ["A", "B", "C"]}
    path.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"labels_3d\[0\] = 3 does not index class_names \(3 names\)"):
        read_box_file(path)
    path.write_text(json.dumps({"box_mode": "lidar", "boxes_3d": boxes, "mode": "lidar"}))
    with pytest.raises(FormatError, match=r"unknown key\(s\) \['mode'\]; predictions"):
        read_box_file(path)
    path.write_text(json.dumps({"boxes_3d": boxes}))
    with pytest.raises(FormatError, match="no 'box_mode' key"):
        read_box_file(path)


def test_column_names_out_of_their_place_are_refused(tmp_path: Path) -> None:
    # Values are read by position: a header or 'columns' that puts a known name elsewhere would
    # be misread silently (yaw taken as x).
    table = tmp_path / "reorder.csv"
    table.write_text("yaw,x,y,z,x_size,y_size,z_size\n0.5,1,2,3,4,5,6\n")
    with pytest.raises(
        FormatError, match=r"reorder.csv: column 0 is named 'yaw', but box values are read by position"
    ):
        read_box_file(table)
    listed = tmp_path / "reorder.json"
    listed.write_text(
        '{"mode": "lidar", "columns": ["x", "y", "z", "yaw", "x_size", "y_size", "z_size"], '
        '"boxes": [[1, 2, 3, 0.5, 4, 5, 6]]}'
    )
    with pytest.raises(FormatError, match=r"'columns': column 3 is named 'yaw'"):
        read_box_file(listed)
    other_names = tmp_path / "lwh.csv"  # names pc3d does not use are taken by position
    other_names.write_text("x,y,z,l,w,h,ry,label\n1,2,3,4,5,6,0.5,car\n")
    assert read_box_file(other_names).boxes.tolist() == [[1, 2, 3, 4, 5, 6, 0.5]]


@pytest.mark.parametrize("suffix", [".csv", ".txt", ".json"])
def test_files_that_are_not_utf8_text_are_a_format_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"binary{suffix}"
    path.write_bytes(b"\xff\xfe1,2")
    with pytest.raises(FormatError, match="not a UTF-8 text file"):
        read_box_file(path)
    if suffix == ".json":
        path.write_text("[" * 100000 + "]" * 100000)
        with pytest.raises(FormatError, match="nested too deeply"):
            read_box_file(path)
