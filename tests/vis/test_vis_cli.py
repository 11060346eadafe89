"""`pc3d show`: PNGs from real KITTI files, and clear errors (exit 2) for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pc3d.cli import main
from pc3d.vis import geometry

from .conftest import KITTI

VELO = KITTI / "velodyne" / "000001.bin"
LABEL = KITTI / "label_2" / "000001.txt"
CALIB = KITTI / "calib" / "000001.txt"


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _has(img: np.ndarray, color: tuple[int, int, int]) -> int:
    return int(np.all(img == np.asarray(color, dtype=np.uint8), axis=-1).sum())


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_kitti_frame_bev_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bev.png"
    assert (
        main(["show", "--kitti", str(KITTI), "--frame", "000001", "--size", "512x256", "--out", str(out)])
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    img = _png(out)
    assert img.shape == (256, 512, 3)
    for name in ("Car", "Cyclist", "Truck"):
        assert _has(img, geometry.class_color(name, "gt")) > 10, name


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_cloud_with_label_file_and_pred_json_equals_kitti_mode(tmp_path: Path) -> None:
    # The same frame given as separate files (KITTI label_2 + calib) renders the same GT picture;
    # a JSON prediction file adds its own colour.
    pred = tmp_path / "pred.json"
    pred.write_text(
        json.dumps(
            {
                "mode": "lidar",
                "boxes": [[69.7, -0.4, -0.8, 12.3, 2.6, 2.8, 0.0]],
                "labels": ["Truck"],
                "scores": [0.7],
            }
        )
    )
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    common = ["--size", "400x240", "--no-legend"]
    assert main(["show", "--kitti", str(KITTI), "--frame", "000001", "--out", str(a), *common]) == 0
    assert (
        main(["show", str(VELO), "--boxes", str(LABEL), "--calib", str(CALIB), "--out", str(b), *common]) == 0
    )
    assert (
        main(
            [
                "show",
                str(VELO),
                "--boxes",
                str(LABEL),
                "--calib",
                str(CALIB),
                "--pred",
                str(pred),
                "--out",
                str(c),
                "--score-thr",
                "0.5",
                "--labels",
                *common,
            ]
        )
        == 0
    )
    truck_pred = geometry.class_color("Truck", "pred")
    assert _has(_png(c), truck_pred) > 10 and _has(_png(b), truck_pred) == 0
    # The KITTI mode frames the front half of the scan only, so compare the box colours' layout
    # through their counts rather than pixel for pixel.
    for name in ("Car", "Truck"):
        assert _has(_png(a), geometry.class_color(name, "gt")) > 10
        assert _has(_png(b), geometry.class_color(name, "gt")) > 10


def test_camera_view_png(tmp_path: Path) -> None:
    out = tmp_path / "cam.png"
    assert (
        main(["show", "--kitti", str(KITTI), "--frame", "000001", "--view", "camera", "--out", str(out)]) == 0
    )
    img = _png(out)
    assert img.shape == (375, 1242, 3)
    assert _has(img, geometry.class_color("Truck", "gt")) > 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "missing.bin", "--out", "x.png"], "missing.bin does not exist"),
        (
            ["show", str(VELO), "--boxes", "nothere.json", "--out", "x.png"],
            "--boxes: nothere.json does not exist",
        ),
        (
            ["show", str(VELO), "--boxes", "bad.json", "--out", "x.png"],
            "bad.json: boxes have 5 values per row, expected at least 7",
        ),
        (["show", str(VELO), "--boxes", str(LABEL), "--out", "x.png"], "needs the LiDAR->camera calibration"),
        (["show", "--kitti", str(KITTI), "--frame", "000009", "--out", "x.png"], "frames with a scan in"),
        (
            ["show", "--kitti", str(KITTI), "--frame", "000000", "--view", "camera", "--out", "x.png"],
            "image_2/000000.png does not exist",
        ),
        (["show", str(VELO), "--view", "camera", "--out", "x.png"], "--view camera needs a camera image"),
        (["show", str(VELO), "--out", "x.jpg"], "must be a .png"),
        (["show", str(VELO), "--size", "wide", "--out", "x.png"], "WIDTHxHEIGHT"),
        (["show", "--frame", "000001", str(VELO)], "--frame only goes with --kitti"),
        (["show"], "give a point cloud file"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    args: list[str], message: str, tmp_path: Path, cli_error: Callable[[list[str]], str]
) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"mode": "lidar", "boxes": [[1, 2, 3, 4, 5]]}))
    assert message in cli_error(args)


def test_unknown_view_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["show", str(VELO), "--view", "top"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'top'" in capsys.readouterr().err


def test_window_without_display_says_to_use_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["show", str(VELO)]) == 2
    assert "--out shot.png" in capsys.readouterr().err


def test_missing_open3d_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    from pc3d.errors import MissingDependencyError
    from pc3d.vis._open3d import import_open3d

    monkeypatch.setitem(sys.modules, "open3d", None)  # makes `import open3d` fail
    with pytest.raises(
        MissingDependencyError, match=r"pip install .*apt-get install libusb-1.0-0 libgl1 libegl1 libgomp1"
    ):
        import_open3d()


def test_no_display_and_no_egl_tells_what_to_install(tmp_path: Path) -> None:
    # A child process with neither X nor a usable EGL driver: open3d cannot create any context.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["__EGL_VENDOR_LIBRARY_FILENAMES"] = str(tmp_path / "no-such-vendor.json")
    code = (
        "import sys, numpy as np, pc3d.vis\n"
        "try:\n"
        "    pc3d.vis.render(np.zeros((5, 3)), size=(64, 64))\n"
        "except pc3d.vis.DisplayUnavailableError as err:\n"
        "    print(err); sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 3, run.stderr
    assert "xvfb-run -a" in run.stdout and "apt-get install xvfb" in run.stdout


@pytest.mark.parametrize("root", [KITTI, KITTI.parent], ids=["training", "kitti-root"])
def test_kitti_accepts_the_root_or_its_training_folder(root: Path, tmp_path: Path) -> None:
    # The camera view needs no OpenGL: it runs everywhere.
    out = tmp_path / "cam.png"
    assert main(["show", "--kitti", str(root), "--frame", "1", "--view", "camera", "--out", str(out)]) == 0
    assert _has(_png(out), geometry.class_color("Truck", "gt")) > 20


def test_kitti_root_without_the_frame_names_the_missing_file(
    tmp_path: Path, cli_error: Callable[[list[str]], str]
) -> None:
    (tmp_path / "training" / "velodyne").mkdir(parents=True)
    err = cli_error(["show", "--kitti", str(tmp_path), "--frame", "000001", "--out", str(tmp_path / "x.png")])
    assert str(tmp_path / "training") in err


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_intensity_colours_with_nan_intensities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = np.fromfile(VELO, np.float32).reshape(-1, 4)[::8].copy()
    scan[::3, 3] = np.nan  # a third of the intensities unknown
    path = tmp_path / "scan.bin"
    scan.tofile(path)
    out = tmp_path / "i.png"
    assert main(["show", str(path), "--color-by", "intensity", "--size", "320x200", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and captured.err == ""
    assert _has(_png(out), geometry.GREY_POINT) > 0  # NaN intensities drawn in the neutral grey
