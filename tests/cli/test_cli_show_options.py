"""`pc3d show` framing (--range, --center, --zoom), per-point labels and their errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pc3d.cli import main
from pc3d.vis import geometry

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
VELO = KITTI / "velodyne" / "000001.bin"


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _has(img: np.ndarray, color: tuple[int, int, int]) -> int:
    return int(np.all(img == np.asarray(color, dtype=np.uint8), axis=-1).sum())


def _scan(tmp_path: Path) -> tuple[Path, np.ndarray]:
    points = np.fromfile(VELO, np.float32).reshape(-1, 4)[::16].copy()
    path = tmp_path / "scan.bin"
    points.tofile(path)
    return path, points


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_zoom_and_center_make_the_car_larger(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    common = ["show", "--kitti", str(KITTI), "--frame", "000001", "--size", "480x270", "--no-legend"]
    assert main([*common, "--out", str(a)]) == 0
    assert main([*common, "--center", "58.8", "16.6", "--zoom", "3", "--out", str(b)]) == 0
    car = geometry.class_color("Car", "gt")
    assert _has(_png(b), car) > 2.5 * _has(_png(a), car)
    rows, cols = np.nonzero(np.all(_png(b) == car, axis=-1))
    assert abs(cols.mean() - 240) < 20 and abs(rows.mean() - 135) < 20  # centred


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
@pytest.mark.parametrize("suffix", [".npy", ".label"])
def test_point_labels_colour_by_class(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scan, points = _scan(tmp_path)
    classes = (points[:, 2] > -1.2).astype(np.int64)  # 0: ground, 1: above
    labels = tmp_path / f"scan{suffix}"
    if suffix == ".npy":
        np.save(labels, classes)
    else:
        # SemanticKITTI layout: instance id in the high 16 bits.
        (classes | (7 << 16)).astype("<u4").tofile(labels)
    out = tmp_path / "seg.png"
    assert (
        main(
            [
                "show",
                str(scan),
                "--point-labels",
                str(labels),
                "--class-names",
                "ground,object",
                "--range",
                "-20",
                "-20",
                "20",
                "20",
                "--size",
                "400x240",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    img = _png(out)
    for cls in (0, 1):
        color = tuple(int(c) for c in geometry.point_class_colors(np.array([cls]))[0])
        assert _has(img, color) > 100, cls
        assert _has(img[:60, :200], color) >= 60, cls  # legend swatch


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--range", "10", "0", "5", "5"], "X0 < X1"),
        (["--zoom", "0"], "--zoom 0.0: expected a positive number"),
        (["--center", "nan", "1"], "--center"),
        (["--point-labels", "nothere.npy"], "--point-labels: nothere.npy does not exist"),
        (["--point-labels", "short.npy"], "short.npy: holds 3 labels but the point cloud has"),
        (["--point-labels", "floats.npy"], "floats.npy: expected a 1-D integer array"),
        (["--point-labels", "labels.txt"], "labels.txt: point label files end in .npy or .label"),
        (["--point-labels", "short.npy", "--color-by", "height"], "goes with --color-by label"),
        (["--class-names", "a,b"], "give that file too"),
        (["--point-labels", "short.npy", "--class-names", "a,,b"], "non-empty names"),
    ],
)
def test_bad_framing_and_labels_exit_2(
    extra: list[str], message: str, tmp_path: Path, cli_error: Callable[[list[str]], str]
) -> None:
    np.save(tmp_path / "short.npy", np.zeros(3, dtype=np.int64))
    np.save(tmp_path / "floats.npy", np.zeros(5))
    (tmp_path / "labels.txt").write_text("1\n")
    scan, _ = _scan(tmp_path)
    err = cli_error(["show", str(scan), "--out", "x.png", *extra])
    assert message in err, err


@pytest.mark.display
@pytest.mark.usefixtures("renderer")
def test_semantickitti_label_files_are_drawn_by_their_class_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raw SemanticKITTI ids (what its .label files and `pc3d infer --format label` hold) go
    through the learning map: car (raw 10) and road (raw 40) are classes 0 and 8, named."""
    scan, points = _scan(tmp_path)
    raw = np.where(points[:, 2] > -1.2, 10, 40).astype("<u4")
    labels = tmp_path / "scan.label"
    raw.tofile(labels)
    out = tmp_path / "sk.png"
    common = ["show", str(scan), "--point-labels", str(labels), "--range", "-20", "-20", "20", "20"]
    assert main([*common, "--size", "400x240", "--out", str(out)]) == 0
    img = _png(out)
    for cls in (0, 8):  # car, road
        color = tuple(int(c) for c in geometry.point_class_colors(np.array([cls]))[0])
        assert _has(img, color) > 100, cls
    assert (
        main([*common, "--class-names", "ground", "--size", "200x120", "--out", str(tmp_path / "w.png")]) == 0
    )
    assert "labels go up to 40 but --class-names names 1 classes (0..0)" in capsys.readouterr().err
