"""`pc3d info`, `pc3d convert` and `pc3d kitti-boxes`, through `pc3d.cli.main` and once as a process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pc3d.cli import main
from pc3d.io.boxes import read_box_file, save_boxes
from pc3d.io.kitti import read_kitti_calib, read_kitti_labels
from pc3d.io.points import read_point_file, write_point_file
from pc3d.structures import CameraBoxes3D

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
SCAN = KITTI / "velodyne" / "000001.bin"
CALIB = KITTI / "calib" / "000001.txt"


def _pc3d_executable() -> str:
    """The `pc3d` console script of the interpreter running the tests (`.venv/bin/pc3d`)."""
    beside = Path(sys.executable).parent / "pc3d"
    found = str(beside) if beside.exists() else shutil.which("pc3d")
    assert found, "the pc3d console script is not installed"
    return found


# ---------------------------------------------------------------------------------- info


def test_info_on_a_kitti_scan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SCAN)]) == 0
    out = capsys.readouterr().out
    raw = np.fromfile(SCAN, np.float32).reshape(-1, 4)
    assert f"points  {len(raw):,}" in out
    assert "fields  x, y, z, intensity" in out
    assert "float32 x 4" in out
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line.strip().split()[:1] in (["x"], ["intensity"])
    }
    assert float(rows["x"][0]) == pytest.approx(raw[:, 0].min(), rel=1e-5)
    assert float(rows["x"][1]) == pytest.approx(raw[:, 0].max(), rel=1e-5)
    assert float(rows["intensity"][1]) == pytest.approx(raw[:, 3].max(), rel=1e-5)
    assert rows["x"][2] == "0"


def test_info_counts_nan_and_reads_pcd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    array = np.array(
        [[1, 2, 3, 0.5], [np.nan, 0, 0, 0.1], [4, 5, np.inf, 0.2], [-1, -2, -3, 0.9]], np.float32
    )
    path = write_point_file(tmp_path / "n.pcd", array, encoding="ascii")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PCD, DATA ascii" in out and "points  4" in out
    assert "2 points have NaN or infinite x/y/z" in out
    x_row = next(line.split() for line in out.splitlines() if line.strip().startswith("x "))
    assert x_row == ["x", "-1", "4", "1"]
    z_row = next(line.split() for line in out.splitlines() if line.strip().startswith("z "))
    assert z_row == ["z", "-3", "3", "1"]


def test_info_on_boxes_and_on_empty_cloud(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_boxes(
        tmp_path / "b.json",
        CameraBoxes3D([[1, 2, 3, 4, 5, 6, 0.5], [0, 0, 9, 1, 1, 1, 0]]),
        labels=["Car", "Car"],
    )
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mode    camera" in out and "boxes   2 x 7 values" in out and "labels  Car 2" in out
    empty = write_point_file(tmp_path / "e.ply", np.zeros((0, 3)))
    assert main(["info", str(empty)]) == 0
    out = capsys.readouterr().out
    assert "points  0" in out and "PLY, binary_little_endian" in out


def test_info_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 10)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pc3d info: error:" in err and "10 bytes" in err and str(bad) in err
    assert main(["info", str(tmp_path / "missing.bin")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------- convert


def test_convert_label_boxes_camera_to_lidar_with_calib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = read_kitti_labels(KITTI / "label_2" / "000001.txt")
    camera = save_boxes(
        tmp_path / "cam.csv", labels.to_camera_boxes(), labels=labels.objects().types.tolist()
    )
    out = tmp_path / "lidar.json"
    assert (
        main(["convert", "--src", "camera", "--dst", "lidar", "--calib", str(CALIB), str(camera), str(out)])
        == 0
    )
    assert "3 boxes camera -> lidar" in capsys.readouterr().out
    converted = read_box_file(out)
    assert converted.mode == "lidar" and converted.labels == ["Truck", "Car", "Cyclist"]
    # Centres checked against plain numpy on the calibration matrices.
    calib = read_kitti_calib(CALIB)
    homo = np.c_[labels.objects().location, np.ones(3)]
    expected = (np.linalg.inv(calib.R0_rect @ calib.Tr_velo_to_cam) @ homo.T).T[:, :3]
    np.testing.assert_allclose(converted.boxes[:, :3], expected, atol=2e-4)

    back = tmp_path / "back.txt"
    assert (
        main(["convert", "--dst", "camera", "--calib", str(CALIB), str(out), str(back)]) == 0
    )  # --src from the file
    np.testing.assert_allclose(read_box_file(back).boxes, read_box_file(camera).boxes, atol=1e-3)


def test_convert_reads_a_kitti_label_file_directly(tmp_path: Path) -> None:
    out = tmp_path / "lidar.json"
    label_file = KITTI / "label_2" / "000001.txt"
    assert (
        main(
            ["convert", "--src", "camera", "--dst", "lidar", "--calib", str(CALIB), str(label_file), str(out)]
        )
        == 0
    )
    converted = read_box_file(out)
    assert converted.labels == ["Truck", "Car", "Cyclist"]  # DontCare regions have no 3D box
    labels = read_kitti_labels(label_file).objects()
    calib = read_kitti_calib(CALIB)
    homo = np.c_[labels.location, np.ones(3)]
    expected = (np.linalg.inv(calib.R0_rect @ calib.Tr_velo_to_cam) @ homo.T).T[:, :3]
    np.testing.assert_allclose(converted.boxes[:, :3], expected, atol=2e-4)
    np.testing.assert_allclose(converted.boxes[:, 3:6], labels.dims_hwl[:, [2, 1, 0]], atol=1e-6)  # l, w, h


def test_convert_refuses_kitti_labels_to_lidar_without_their_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default axis swap has no translation: KITTI boxes would land ~0.3-0.7 m off (as pc3d show refuses).
    label_file = KITTI / "label_2" / "000001.txt"
    assert main(["convert", "--dst", "lidar", str(label_file), str(tmp_path / "x.json")]) == 2
    assert "converting them to lidar needs it: pass --calib" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    assert (
        main(["convert", "--dst", "camera", str(label_file), str(tmp_path / "same.json")]) == 0
    )  # format only


def test_convert_boxes_with_the_default_permutation(tmp_path: Path) -> None:
    path = tmp_path / "cam.npy"
    np.save(path, np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]], np.float32))
    out = tmp_path / "lidar.csv"
    assert main(["convert", "--what", "boxes", "--src", "camera", "--dst", "lidar", str(path), str(out)]) == 0
    # Camera (x right, y down, z fwd) -> LiDAR: (x, y, z) -> (z, -x, -y); l, h, w -> l, w, h;
    # yaw 0 (along camera +x = LiDAR -y) -> -pi/2.
    np.testing.assert_allclose(read_box_file(out).boxes, [[3, -1, -2, 4, 6, 5, -np.pi / 2]], atol=1e-6)


def test_convert_points_with_calib_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cam.pcd"
    assert (
        main(["convert", "--src", "lidar", "--dst", "camera", "--calib", str(CALIB), str(SCAN), str(out)])
        == 0
    )
    assert "lidar -> camera" in capsys.readouterr().out
    raw = np.fromfile(SCAN, np.float32).reshape(-1, 4).astype(np.float64)
    calib = read_kitti_calib(CALIB)
    expected = (calib.lidar_to_cam @ np.c_[raw[:, :3], np.ones(len(raw))].T).T[:, :3]
    back = read_point_file(out)
    assert back.fields == ("x", "y", "z", "intensity")
    np.testing.assert_allclose(back.array[:, :3], expected, atol=1e-3)
    np.testing.assert_array_equal(back.array[:, 3], raw[:, 3].astype(np.float32))

    ply = tmp_path / "same.ply"
    assert main(["convert", "--src", "lidar", "--dst", "lidar", "--ascii", str(out), str(ply)]) == 0
    np.testing.assert_array_equal(read_point_file(ply).array, back.array)
    assert b"format ascii" in ply.read_bytes()[:50]


def test_convert_points_drops_nan_with_a_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_point_file(tmp_path / "n.npy", np.array([[1, 2, 3, 0], [np.nan, 1, 1, 0]], np.float32))
    out = tmp_path / "o.bin"
    assert main(["convert", "--what", "points", "--src", "lidar", "--dst", "depth", str(path), str(out)]) == 0
    captured = capsys.readouterr()
    assert "pc3d convert: warning:" in captured.err and "dropped 1 of 2 points" in captured.err
    # default LiDAR -> Depth: (x, y, z) -> (-y, x, z)
    np.testing.assert_allclose(read_point_file(out).array, [[-2, 1, 3, 0]])
    assert (
        main(
            [
                "convert",
                "--what",
                "points",
                "--src",
                "lidar",
                "--dst",
                "depth",
                "--nan-policy",
                "raise",
                str(path),
                str(out),
            ]
        )
        == 2
    )
    assert "point 1 (0-based)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--src", "lidar", "--dst", "camera", "{npy}", "{tmp}/o.npy"],
            "say which (--what points or --what boxes",
        ),
        (["--dst", "camera", "{scan}", "{tmp}/o.bin"], "point files do not state their system; pass --src"),
        (
            ["--src", "lidar", "--dst", "depth", "--calib", "{calib}", "{scan}", "{tmp}/o.bin"],
            "cannot convert lidar -> depth",
        ),
        (["--src", "lidar", "--dst", "camera", "{scan}", "{tmp}/o.json"], "cannot write points as '.json'"),
        (["--dst", "lidar", "{narrow}", "{tmp}/o.json"], "6 values per row, expected at least 7"),
        (
            ["--src", "lidar", "--dst", "camera", "--calib", "{badcalib}", "{scan}", "{tmp}/o.bin"],
            "missing calibration key(s) P0",
        ),
        (["--src", "camera", "--dst", "lidar", "{tmp}/nothing.json", "{tmp}/o.json"], "does not exist"),
    ],
)
def test_convert_bad_input_is_one_clear_line(
    tmp_path: Path, cli_error: Callable[[list[str]], str], argv: list[str], expected: str
) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 7), np.float32))
    (tmp_path / "narrow.json").write_text('{"mode": "camera", "boxes": [[1, 2, 3, 4, 5, 6]]}')
    (tmp_path / "calib.txt").write_text("P1: " + " ".join(["1"] * 12) + "\n")
    names = {"npy": tmp_path / "x.npy", "tmp": tmp_path, "scan": SCAN, "calib": CALIB,
             "narrow": tmp_path / "narrow.json", "badcalib": tmp_path / "calib.txt"}  # fmt: skip
    err = cli_error(["convert", *(a.format(**names) for a in argv)])
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.bin").exists()


# --------------------------------------------------------------------------- kitti-boxes


def test_kitti_boxes_writes_lidar_boxes_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.json"
    assert main(["kitti-boxes", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "KITTI frame 000001" in text
    assert "120,268 LiDAR points" in text
    assert "3 objects (+4 DontCare regions" in text
    assert "boxes per class: Car 1, Cyclist 1, Truck 1" in text
    content = json.loads(out.read_text())
    assert content["mode"] == "lidar" and content["labels"] == ["Truck", "Car", "Cyclist"]
    counts = content["meta"]["points_in_box"]
    assert len(counts) == 3 and all(c > 0 for c in counts)
    for name, count in zip(content["labels"], counts, strict=True):
        row = next(line for line in text.splitlines() if f" {name} " in line)
        assert row.split()[-1] == f"{count:,}"
    boxes = read_box_file(out)
    assert boxes.boxes[1, 0] == pytest.approx(58.78, abs=0.05) and boxes.boxes[1, 1] == pytest.approx(
        16.56, abs=0.05
    )


def test_kitti_boxes_other_frame_and_bad_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f4.json"
    assert main(["kitti-boxes", "--root", str(KITTI), "--frame", "000004", "--out", str(out)]) == 0
    assert "boxes per class: Car 2" in capsys.readouterr().out
    assert read_box_file(out).labels == ["Car", "Car"]
    assert main(["kitti-boxes", "--root", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert main(["kitti-boxes", "--frame", "000003", "--out", str(out)]) == 2
    assert "velodyne/000003.bin does not exist" in capsys.readouterr().err


def test_kitti_boxes_and_info_as_a_process(tmp_path: Path) -> None:
    """The installed console script, from another working directory: default output path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [_pc3d_executable(), "kitti-boxes"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = tmp_path / "work_dirs" / "kitti-boxes" / "000001_lidar_boxes.json"
    assert f"wrote {Path('work_dirs/kitti-boxes/000001_lidar_boxes.json')}" in done.stdout
    assert sorted(json.loads(written.read_text())["labels"]) == ["Car", "Cyclist", "Truck"]
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 7)
    done = subprocess.run(
        [_pc3d_executable(), "info", str(bad)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"pc3d info: error: {bad}: size 7 bytes is not a multiple of the record size 16 bytes (4 float32 values per point)"
    ]


def test_kitti_boxes_takes_the_kitti_root_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "root.json"
    assert main(["kitti-boxes", "--kitti", str(KITTI.parent), "--out", str(out)]) == 0
    assert "boxes per class: Car 1, Cyclist 1, Truck 1" in capsys.readouterr().out


# ----------------------------------------------------------------------- --nan-policy


def _kitti_with_nan_points(tmp_path: Path) -> tuple[Path, Path, int]:
    """A KITTI root whose frame 000001 has 2 points with NaN x; the scan and its point count."""
    training = tmp_path / "kitti" / "training"
    for folder in ("calib", "label_2"):
        (training / folder).mkdir(parents=True)
        shutil.copy(KITTI / folder / "000001.txt", training / folder / "000001.txt")
    scan = np.fromfile(SCAN, np.float32).reshape(-1, 4)[::16].copy()
    scan[[3, 10], 0] = np.nan
    (training / "velodyne").mkdir()
    path = training / "velodyne" / "000001.bin"
    scan.tofile(path)
    return training.parent, path, len(scan)


def _no_rendering(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """`pc3d show --out` without drawing: the points and options each render call got."""
    import pc3d.vis

    calls: list[dict[str, object]] = []

    def render(points: np.ndarray, gt: object, pred: object, **options: object) -> np.ndarray:
        calls.append({"points": points, **options})
        return np.zeros((2, 3, 3), np.uint8)

    monkeypatch.setattr(pc3d.vis, "render", render)
    return calls


# Every command that reads a point cloud, with {root} (a KITTI root), {scan} (its frame's scan)
# and {tmp} filled in.
NAN_POLICY_COMMANDS = {
    "convert": ["convert", "--src", "lidar", "--dst", "camera", "{scan}", "{tmp}/out.bin"],
    "show": ["show", "{scan}", "--out", "{tmp}/out.png"],
    "show --kitti": ["show", "--kitti", "{root}", "--frame", "000001", "--out", "{tmp}/out.png"],
    "kitti-boxes": ["kitti-boxes", "--kitti", "{root}", "--out", "{tmp}/out.json"],
}


@pytest.mark.parametrize("command", sorted(NAN_POLICY_COMMANDS))
def test_every_point_reading_command_takes_nan_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    root, scan, num_points = _kitti_with_nan_points(tmp_path)
    _no_rendering(monkeypatch)
    argv = [a.format(root=root, scan=scan, tmp=tmp_path) for a in NAN_POLICY_COMMANDS[command]]
    name = argv[0]
    # Default: the points are dropped, and one warning line names the file and the count.
    assert main(argv) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning == [
        f"pc3d {name}: warning: {scan}: dropped 2 of {num_points} points with NaN or infinite x/y/z; "
        "to stop with an error instead, use --nan-policy raise (command line), nan_policy: raise "
        "(a data set in a config) or nan_policy='raise' (Python)"
    ]
    # The option the warning suggests: exit status 2, one line naming the file and the count.
    for written in tmp_path.glob("out.*"):
        written.unlink()
    assert main([*argv, "--nan-policy", "raise"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"pc3d {name}: error: {scan}: 2 of {num_points} points have NaN or infinite x/y/z")
    assert "the first is point 3 (0-based)" in err
    assert not list(tmp_path.glob("out.*"))


def test_show_drops_the_labels_of_the_points_it_drops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, scan, num_points = _kitti_with_nan_points(tmp_path)
    calls = _no_rendering(monkeypatch)
    labels = tmp_path / "labels.npy"
    np.save(labels, np.arange(num_points) % 5)  # one label per row of the file
    assert main(["show", str(scan), "--point-labels", str(labels), "--out", str(tmp_path / "o.png")]) == 0
    assert "dropped 2 of" in capsys.readouterr().err
    (call,) = calls
    kept = np.delete(np.arange(num_points), [3, 10])
    assert len(call["points"]) == num_points - 2  # type: ignore[arg-type]
    np.testing.assert_array_equal(call["point_labels"], kept % 5)


def test_info_reports_nan_points_and_how_the_other_commands_treat_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, scan, num_points = _kitti_with_nan_points(tmp_path)
    assert main(["info", str(scan)]) == 0  # counts them, whatever a later reader would do
    out = capsys.readouterr().out
    assert f"points  {num_points:,}" in out
    assert "2 points have NaN or infinite x/y/z" in out and "--nan-policy raise" in out


def test_convert_carries_nan_intensities_through_a_change_of_system(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    array = np.fromfile(SCAN, np.float32).reshape(-1, 4)[:50].copy()
    array[[0, 7], 3] = np.nan  # unknown intensities: still points
    path = write_point_file(tmp_path / "nanint.bin", array)
    calib = read_kitti_calib(CALIB)
    expected = (calib.lidar_to_cam @ np.c_[array[:, :3], np.ones(len(array))].T).T[:, :3]
    for policy in ("drop", "raise"):
        out = tmp_path / f"cam_{policy}.bin"
        argv = ["--src", "lidar", "--dst", "camera", "--calib", str(CALIB), "--nan-policy", policy]
        assert main(["convert", *argv, str(path), str(out)]) == 0
        assert capsys.readouterr().err == ""
        back = read_point_file(out, nan_policy="raise")
        assert back.num_points == 50 and np.isnan(back.array[[0, 7], 3]).all()
        np.testing.assert_allclose(back.array[:, :3], expected, atol=1e-3)
    # A bad coordinate in the same file is dropped, the NaN intensities stay with their points.
    array[3, 1] = np.nan
    write_point_file(path, array)
    out = tmp_path / "cam.bin"
    assert main(["convert", "--src", "lidar", "--dst", "depth", str(path), str(out)]) == 0
    assert "dropped 1 of 50 points" in capsys.readouterr().err
    back = read_point_file(out)
    assert back.num_points == 49 and np.isnan(back.array[[0, 6], 3]).all()
    assert (
        main(["convert", "--src", "lidar", "--dst", "depth", "--nan-policy", "raise", str(path), str(out)])
        == 2
    )
    assert (
        "1 of 50 points have NaN or infinite x/y/z; the first is point 3 (0-based)" in capsys.readouterr().err
    )


def test_info_on_per_point_label_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SemanticKITTI .label (raw ids, named through its learning map) and a 1-D integer .npy as
    `pc3d infer` writes for a segmentation model: a class histogram, not an extension error."""
    semantic = Path(__file__).resolve().parents[1] / "data/semantickitti/sequences/00/labels/000000.label"
    assert main(["info", str(semantic)]) == 0
    out = capsys.readouterr().out
    assert "points  50" in out
    assert re.search(r"^\s+50\s+25\s+50\.0%\s+building$", out, re.M)
    assert re.search(r"^\s+0\s+2\s+4\.0%\s+ignored$", out, re.M)
    labels = tmp_path / "pred.npy"
    np.save(labels, np.array([0, 0, 2, -1, 5]))
    assert main(["info", str(labels)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s+-1\s+1\s+20\.0%\s+no label$", out, re.M) and re.search(
        r"^\s+0\s+2\s+40\.0%$", out, re.M
    )
