"""`pc3d kitti-eval`: folders in, the familiar table out, JSON in pc3d's layout, bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pc3d.cli import main
from pc3d.evaluation import kitti_eval, load_label_dirs

DATA = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training" / "label_2"


def write_frames(folder: Path, frames: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, lines in frames.items():
        (folder / f"{frame}.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def car(left: float, x: float, score: float | None = None, ry: float = 0.3) -> str:
    line = (
        f"Car 0.00 0 -1.58 {left:.2f} 150.00 {left + 80:.2f} 210.00 1.50 1.60 3.90 "
        f"{x:.2f} 1.60 20.00 {ry:.2f}"
    )
    return line if score is None else f"{line} {score:.4f}"


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """45 cars in 5 frames, all detected exactly except frame 000004's (no result file) and
    one false positive in frame 000000."""
    gts, dets = {}, {}
    for f in range(5):
        rows = [(10.0 + 110 * i, -20.0 + 5 * i) for i in range(9)]
        gts[f"{f:06d}"] = [car(left, x) for left, x in rows]
        if f != 4:
            dets[f"{f:06d}"] = [car(left, x, 0.5 + 0.01 * i + 0.1 * f) for i, (left, x) in enumerate(rows)]
    dets["000000"].append(car(10.0, 30.0, 0.99).replace("150.00", "400.00").replace("210.00", "460.00"))
    return write_frames(tmp_path / "gt", gts), write_frames(tmp_path / "det", dets)


def test_cli_prints_the_table_and_writes_json(
    scene: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, det_dir = scene
    out = tmp_path / "out" / "ap.json"
    assert main(["kitti-eval", str(gt_dir), str(det_dir), "--classes", "Car", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Car AP11@0.70, 0.70, 0.70 (strict):" in captured.out
    assert "Car AP40@0.70, 0.50, 0.50 (loose):" in captured.out
    assert "1 of 5 frames have no detection file" in captured.err
    data = json.loads(out.read_text())
    assert set(data) == {"Car"}
    assert set(data["Car"]) == {"strict", "loose"}
    assert set(data["Car"]["strict"]) == {"bbox", "bev", "3d", "aos"}
    frames = load_label_dirs(gt_dir, det_dir)
    expected = kitti_eval(frames.gts, frames.dets, ["Car"]).to_dict()
    assert data == json.loads(json.dumps(expected))
    # 36 of 45 cars found, one false positive above all: well below 100, above 0
    assert 0 < data["Car"]["strict"]["3d"]["moderate"]["AP40"] < 80


def test_cli_split_selects_frames(
    scene: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, det_dir = scene
    split = tmp_path / "val.txt"
    split.write_text("000001\n000002\n000003\n")
    out = tmp_path / "ap.json"
    assert (
        main(
            [
                "kitti-eval",
                str(gt_dir),
                str(det_dir),
                "--split",
                str(split),
                "--classes",
                "Car",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    # 27 cars, all found exactly, no false positive in these frames: thresholds 0..26 only
    values = json.loads(out.read_text())["Car"]["strict"]["bev"]["moderate"]
    assert values == pytest.approx({"AP11": 700 / 11, "AP40": 26 / 40 * 100})
    assert "no detection file" not in capsys.readouterr().err


def test_cli_reports_bad_input_with_file_and_line(
    scene: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    gt_dir, det_dir = scene
    bad = det_dir / "000002.txt"
    lines = bad.read_text().splitlines()
    cases = [
        (car(10.0, 0.0), "000002.txt:3: expected 16 fields, found 15"),
        (car(10.0, 0.0, 0.5).replace("Car", "Lorry"), "000002.txt:3: unknown class name 'Lorry'"),
        (car(10.0, 0.0, 0.5).replace("1.50 1.60", "-1.50 1.60"), "000002.txt:3: negative size"),
        (car(10.0, 0.0, 0.5) + " 7", "000002.txt:3: expected 16 fields, found 17"),
    ]
    for line, message in cases:
        bad.write_text("\n".join(lines[:2] + [line] + lines[3:]) + "\n")
        assert main(["kitti-eval", str(gt_dir), str(det_dir)]) == 2
        assert message in capsys.readouterr().err
    assert main(["kitti-eval", str(gt_dir), str(det_dir / "nowhere")]) == 2
    assert f"detection folder {det_dir / 'nowhere'} does not exist" in capsys.readouterr().err
    assert main(["kitti-eval", str(gt_dir), str(bad)]) == 2
    assert "is not a folder of detection files" in capsys.readouterr().err
    # A folder without any evaluated frame's file, or of pc3d's JSON predictions, is no AP 0 table.
    other = det_dir.parent / "other"
    other.mkdir()
    assert main(["kitti-eval", str(gt_dir), str(other)]) == 2
    assert "none of the 5 evaluated frames has a detection file" in capsys.readouterr().err
    (other / "000000.json").write_text("{}")
    assert main(["kitti-eval", str(gt_dir), str(other)]) == 2
    assert "holds .json predictions, not KITTI label files" in capsys.readouterr().err
    assert main(["kitti-eval", str(gt_dir), str(gt_dir), "--classes", "Tram"]) == 2
    assert "cannot evaluate class 'Tram'" in capsys.readouterr().err


def test_cli_on_the_shipped_kitti_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ground truth as its own detections (score 1): every counted box is found
    det_dir = tmp_path / "det"
    det_dir.mkdir()
    for path in DATA.glob("*.txt"):
        rows = [
            line for line in path.read_text().splitlines() if line.split() and line.split()[0] != "DontCare"
        ]
        (det_dir / path.name).write_text("".join(f"{line} 1.0\n" for line in rows))
    out = tmp_path / "ap.json"
    assert main(["kitti-eval", str(DATA), str(det_dir), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    frames = load_label_dirs(DATA, det_dir)
    assert data == json.loads(json.dumps(kitti_eval(frames.gts, frames.dets).to_dict()))
    # a handful of boxes: thresholds 0..k-1 only, so AP11 is (points read)/11 of 100
    for cls in ("Car", "Pedestrian"):
        assert data[cls]["strict"]["3d"]["hard"]["AP11"] > 0
    assert "AP11" in capsys.readouterr().out
