"""`pc3d infer` and `pc3d checkpoint convert` end to end on the shipped KITTI frames.

A small PointPillars (the zoo config with narrow layers) with random weights stands in for a
trained model: what is checked is the path from files to files, not the detections' quality. With
the MMDetection3D reference (`../shared/reference/mmdet3d`) present, its checkpoint runs unchanged.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import pc3d.allocator
import pc3d.errors
import pc3d.inference
import pc3d.io.points
from pc3d.cli import main
from pc3d.io.boxes import read_box_file
from pc3d.io.kitti import lidar_to_camera_boxes, project_boxes_to_image, read_kitti_calib, read_kitti_labels
from pc3d.structures import Detections3D, LiDARBoxes3D

REPO = Path(__file__).resolve().parents[2]
KITTI = REPO / "tests" / "data" / "kitti" / "training"
CLOUDS = [KITTI / "velodyne" / "000001.bin", KITTI / "velodyne" / "000004.bin"]
REFERENCE = REPO / ".." / "shared" / "reference" / "mmdet3d"
FRAME_8 = REPO / ".." / "shared" / "data" / "kitti" / "mmdet3d_demo" / "000008.bin"
CLASSES = ["Pedestrian", "Cyclist", "Car"]
# The zoo PointPillars with narrow layers, keeping every detection (random weights score low).
NARROW = REPO / "tests" / "data" / "configs" / "pointpillars-narrow_hv-secfpn_kitti-3d-3class.yaml"
SMALL = f"""\
_base_: {NARROW}
model:
  bbox_head:
    test_cfg: {{score_thr: 0.0}}
"""


def infer(
    config: str | Path, checkpoint: Path, clouds: Path | list[Path], out_dir: Path, *options: str
) -> int:
    """``pc3d infer CONFIG CHECKPOINT CLOUD... --out-dir OUT_DIR [OPTIONS]``; its exit status."""
    paths = [clouds] if isinstance(clouds, Path) else clouds
    return main(
        ["infer", str(config), str(checkpoint), *map(str, paths), "--out-dir", str(out_dir), *options]
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A small PointPillars config, its random weights as an MMDetection3D checkpoint, and them."""
    folder = tmp_path_factory.mktemp("small")
    config = folder / "pointpillars_small.yaml"
    config.write_text(SMALL)
    torch.manual_seed(0)
    model = pc3d.inference.load_model(config)
    state_dict = model.state_dict()
    checkpoint = folder / "mmdet3d.pth"
    torch.save(
        {
            "meta": {"mmdet3d_version": "1.4.0", "dataset_meta": {"classes": CLASSES}},
            "state_dict": state_dict,
        },
        checkpoint,
    )
    return config, checkpoint, state_dict


def test_json_predictions_and_summary(small: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    config, checkpoint, _ = small
    out = tmp_path / "preds"
    assert infer(config, checkpoint, CLOUDS, out) == 0
    model = pc3d.inference.load_model(config, checkpoint)
    for cloud in CLOUDS:
        written = json.loads((out / f"{cloud.stem}.json").read_text())
        assert set(written) == {"box_mode", "boxes_3d", "scores_3d", "labels_3d", "class_names"}
        assert written["box_mode"] == "lidar" and written["class_names"] == CLASSES
        expected = pc3d.inference.detect(model, cloud)
        assert len(written["boxes_3d"]) == len(expected) == 50  # score_thr 0: max_num boxes
        np.testing.assert_allclose(written["boxes_3d"], expected.boxes.tensor.numpy(), atol=1e-5)
        np.testing.assert_allclose(written["scores_3d"], expected.scores.numpy(), atol=1e-6)
        assert written["labels_3d"] == expected.labels.tolist()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_frames"] == 2 and len(summary["frames"]) == 2 and summary["optimized"] is True
    # The predictions are a box file for the other commands (show --pred, info, convert).
    assert main(["convert", "--dst", "lidar", str(out / "000001.json"), str(tmp_path / "boxes.csv")]) == 0
    table = read_box_file(tmp_path / "boxes.csv")
    assert table.mode == "lidar" and len(table.boxes) == 50 and set(table.labels) <= set(CLASSES)
    assert (
        0 < summary["latency_ms"]["median"] and summary["latency_ms"]["min"] <= summary["latency_ms"]["mean"]
    )


def test_no_optimize_runs_the_model_as_built(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    config, checkpoint, _ = small
    plain = pc3d.inference.load_model(config, checkpoint)
    fast = pc3d.inference.load_model(config, checkpoint, optimize=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert fast.class_names == plain.class_names == CLASSES
    assert infer(config, checkpoint, CLOUDS[0], tmp_path, "--no-optimize") == 0
    assert json.loads((tmp_path / "summary.json").read_text())["optimized"] is False
    written = json.loads((tmp_path / "000001.json").read_text())
    expected = pc3d.inference.detect(plain, CLOUDS[0])
    assert written["boxes_3d"] == expected.boxes.tensor.tolist()  # the plain model's own numbers
    optimised = pc3d.inference.detect(fast, CLOUDS[0])
    np.testing.assert_allclose(optimised.boxes.tensor.numpy(), expected.boxes.tensor.numpy(), atol=1e-4)


def test_infer_and_load_model_keep_freed_memory(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, checkpoint, _ = small
    calls: list[str] = []
    monkeypatch.setattr(pc3d.allocator, "keep_freed_memory", lambda: bool(calls.append("called")))
    pc3d.inference.load_model(config, checkpoint)
    assert calls == ["called"]
    assert infer(config, checkpoint, CLOUDS[0], tmp_path) == 0
    assert len(calls) >= 2  # the command line's, then load_model's


def test_score_threshold_drops_low_scores(small: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    config, checkpoint, _ = small
    model = pc3d.inference.load_model(config, checkpoint)
    every = pc3d.inference.detect(model, CLOUDS[0])
    threshold = float(every.scores.median())
    assert infer(config, checkpoint, CLOUDS[0], tmp_path, "--score-thr", str(threshold)) == 0
    written = json.loads((tmp_path / "000001.json").read_text())
    assert written["scores_3d"] and min(written["scores_3d"]) > threshold
    assert written["scores_3d"] == every.scores[every.scores > threshold].tolist()


def test_kitti_format_uses_the_frames_calibration(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    config, checkpoint, _ = small
    out = tmp_path / "kitti"
    assert infer(config, checkpoint, CLOUDS[0], out, "--format", "kitti") == 0
    labels = read_kitti_labels(out / "000001.txt")
    assert set(labels.types) <= set(CLASSES)
    assert not np.isnan(labels.score).any() and np.all(np.diff(labels.score) <= 1e-6)  # best first
    # As MMDetection3D writes KITTI results: only the boxes in image 2 whose bottom centre is in
    # (0, -40, -3) - (70.4, 40, 0); random weights put most of the 50 elsewhere.
    every = pc3d.inference.detect(pc3d.inference.load_model(config, checkpoint), CLOUDS[0])
    calib = read_kitti_calib(KITTI / "calib" / "000001.txt")
    projected = project_boxes_to_image(
        lidar_to_camera_boxes(every.boxes, calib), calib.cam_to_img, (1242, 375)
    )
    bottom = every.boxes.tensor[:, :3].numpy()
    in_range = ((bottom > [0, -40, -3]) & (bottom < [70.4, 40, 0])).all(axis=1)
    seen = projected.visible & in_range
    assert len(every) == 50 and 0 < seen.sum() < 50 and len(labels.types) == seen.sum()
    np.testing.assert_allclose(labels.score, every.scores.numpy()[seen], atol=1e-4)  # 4 decimals
    # The official evaluation reads them (random weights: the numbers themselves mean nothing).
    assert main(["kitti-eval", str(KITTI / "label_2"), str(out), "--classes", "Car"]) == 0


def test_kitti_format_without_calibration_is_an_error(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    cloud = tmp_path / "cloud.bin"
    cloud.write_bytes(CLOUDS[0].read_bytes())
    assert infer(config, checkpoint, cloud, tmp_path / "o", "--format", "kitti") == 2
    assert "--calib FILE" in capsys.readouterr().err
    calib = KITTI / "calib" / "000001.txt"
    assert infer(config, checkpoint, cloud, tmp_path / "o", "--format", "kitti", "--calib", str(calib)) == 0
    # The same lines as for the frame inside its KITTI layout (whose calib/000001.txt that is).
    assert infer(config, checkpoint, CLOUDS[0], tmp_path / "layout", "--format", "kitti") == 0
    written = (tmp_path / "o" / "cloud.txt").read_text()
    assert written.strip() and written == (tmp_path / "layout" / "000001.txt").read_text()
    # In a KITTI layout whose calib/ID.txt is missing: said so, before the model runs on any frame.
    layout = tmp_path / "nocal" / "training"
    (layout / "velodyne").mkdir(parents=True)
    (layout / "calib").mkdir()
    for cloud in CLOUDS:
        (layout / "velodyne" / cloud.name).write_bytes(cloud.read_bytes())
    (layout / "calib" / "000001.txt").write_bytes(calib.read_bytes())
    out = tmp_path / "nocal_out"
    assert infer(config, checkpoint, layout / "velodyne", out, "--format", "kitti") == 2
    assert (
        f"{layout / 'calib' / '000004.txt'} does not exist: add it, or give --calib FILE"
        in capsys.readouterr().err
    )
    assert not out.exists()


def test_clouds_sharing_a_stem_are_refused_before_anything_runs(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "000001.npy"
    np.save(twin, np.fromfile(CLOUDS[0], dtype=np.float32).reshape(-1, 4))
    out = tmp_path / "o"
    assert infer(config, checkpoint, [CLOUDS[0], twin], out) == 2
    err = capsys.readouterr().err
    assert str(CLOUDS[0]) in err and str(twin) in err and "--out-dir" in err
    assert not out.exists()  # refused before the model ran or wrote anything
    assert infer(config, checkpoint, [CLOUDS[0], tmp_path / "missing.bin"], out) == 2
    assert "missing.bin does not exist" in capsys.readouterr().err and not out.exists()


def test_a_folder_stands_for_its_point_clouds(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    folder = tmp_path / "scans"
    folder.mkdir()
    for cloud in CLOUDS:
        (folder / cloud.name).write_bytes(cloud.read_bytes())
    (folder / "notes.txt").write_text("not a cloud")
    assert infer(config, checkpoint, folder, tmp_path / "out", "--warmup", "0") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [Path(f["cloud"]).name for f in summary["frames"]] == ["000001.bin", "000004.bin"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert infer(config, checkpoint, empty, tmp_path / "none") == 2
    assert f"{empty} holds no point clouds (.bin .npy .pcd .ply)" in capsys.readouterr().err


def test_nan_points_are_dropped_or_refused_as_asked(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    points = np.fromfile(CLOUDS[0], dtype=np.float32).reshape(-1, 4)
    points[:7, 0] = np.nan
    cloud = tmp_path / "nan.npy"
    np.save(cloud, points)
    assert infer(config, checkpoint, cloud, tmp_path / "drop") == 0
    err = capsys.readouterr().err
    assert f"warning: {cloud}: dropped 7 of {len(points)} points" in err
    assert "--nan-policy raise" in err  # the option the warning names exists
    assert json.loads((tmp_path / "drop" / "nan.json").read_text())["boxes_3d"]
    assert infer(config, checkpoint, cloud, tmp_path / "raise", "--nan-policy", "raise") == 2
    assert f"7 of {len(points)} points have NaN" in capsys.readouterr().err
    assert not (tmp_path / "raise" / "nan.json").exists()


def test_a_cloud_the_model_cannot_take_is_named(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    xyz = tmp_path / "xyz.npy"  # three columns; the pillar encoder takes four
    np.save(xyz, np.fromfile(CLOUDS[1], dtype=np.float32).reshape(-1, 4)[:, :3])
    out = tmp_path / "o"
    assert infer(config, checkpoint, [CLOUDS[0], xyz], out, "--warmup", "0") == 2
    assert f"error: {xyz}: PillarFeatureNet expects 4 features per point, got 3" in capsys.readouterr().err
    assert (out / "000001.json").is_file()  # the frame before it stays written


def _ros_cloud(path: Path, order: tuple[str, ...]) -> Path:
    """Frame 000004 as a ROS-style PCD: x y z, then ring, intensity and timestamp in ``order``."""
    kitti = np.fromfile(CLOUDS[1], dtype=np.float32).reshape(-1, 4)
    extra = {
        "intensity": kitti[:, 3],
        "ring": np.arange(len(kitti)) % 64,
        "timestamp": np.linspace(0.0, 0.1, len(kitti)),
    }
    columns = [kitti[:, 0], kitti[:, 1], kitti[:, 2], *(extra[name] for name in order)]
    return pc3d.io.points.write_point_file(path, np.stack(columns, 1), ("x", "y", "z", *order))


def test_use_dims_picks_the_columns_the_model_reads(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    assert infer(config, checkpoint, CLOUDS[1], tmp_path / "kitti", "--warmup", "0") == 0
    expected = json.loads((tmp_path / "kitti" / "000004.json").read_text())
    assert expected["boxes_3d"]  # a score threshold of 0: something to compare
    ros = _ros_cloud(tmp_path / "ros" / "000004.pcd", ("ring", "intensity", "timestamp"))
    out = tmp_path / "o"
    # Without --use-dims the model refuses the cloud, and the error says what to do.
    assert infer(config, checkpoint, ros, out, "--warmup", "0") == 2
    err = capsys.readouterr().err
    assert "PillarFeatureNet expects 4 features per point, got 6" in err
    assert "the cloud's columns: x, y, z, ring, intensity, timestamp" in err and "--use-dims" in err
    for dims in ("x,y,z,intensity", "0,1,2,4"):
        assert infer(config, checkpoint, ros, out / dims, "--warmup", "0", "--use-dims", dims) == 0
        assert json.loads((out / dims / "000004.json").read_text()) == expected
    # The first N columns (MMDetection3D's use_dim=N), here with intensity fourth.
    first = _ros_cloud(tmp_path / "first" / "000004.pcd", ("intensity", "ring", "timestamp"))
    assert infer(config, checkpoint, first, out / "first", "--warmup", "0", "--use-dims", "4") == 0
    assert json.loads((out / "first" / "000004.json").read_text()) == expected
    capsys.readouterr()
    for dims, message in (
        ("x,y,z,intensty", "no column 'intensty' (did you mean 'intensity'?); its columns: x, y, z, ring"),
        ("intensity,x,y,z", "use_dims must start with x, y, z (models read them first), got ['intensity'"),
        ("0,1,2,9", "column 9 is not an index from 0 to 5"),
        ("0,1,2,2", "use_dims picks a column twice"),
        ("7", "cannot keep the first 7 columns"),
    ):
        assert infer(config, checkpoint, ros, out / "bad", "--use-dims", dims) == 2
        assert f"error: {ros}: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # a usage error
        infer(config, checkpoint, ros, out / "bad", "--use-dims", "x,,y")
    assert "an empty column between commas" in capsys.readouterr().err


def test_a_detector_refuses_the_label_format(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    assert infer(config, checkpoint, CLOUDS[0], tmp_path / "o", "--format", "label") == 2
    assert (
        "--format label writes per-point labels of a segmentation model, and VoxelDetector detects boxes"
        in (capsys.readouterr().err)
    )
    assert not (tmp_path / "o").exists()


def test_use_dims_in_the_python_api(small: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    config, checkpoint, _ = small
    model = pc3d.inference.load_model(config, checkpoint)
    expected = pc3d.inference.detect(model, CLOUDS[1])
    ros = _ros_cloud(tmp_path / "000004.pcd", ("ring", "intensity", "timestamp"))
    by_name = pc3d.inference.detect(model, ros, use_dims=["x", "y", "z", "intensity"])
    assert torch.equal(by_name.boxes.tensor, expected.boxes.tensor)
    array = pc3d.io.points.read_point_file(ros).array
    by_index = pc3d.inference.detect(model, array, use_dims=[0, 1, 2, 4])
    assert torch.equal(by_index.scores, expected.scores)
    with pytest.raises(
        pc3d.errors.FormatError, match="no column 'ring'; its columns: x, y, z, intensity, feature_4"
    ):
        pc3d.inference.detect(
            model, array, use_dims=["x", "y", "z", "ring"]
        )  # an array's columns are unnamed


def test_nan_in_a_feature_column_is_dropped_before_the_model(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One NaN intensity would make every score of the frame NaN: no detections at all.
    config, checkpoint, _ = small
    points = np.fromfile(CLOUDS[0], dtype=np.float32).reshape(-1, 4)
    poisoned = points.copy()
    poisoned[100, 3] = np.nan
    cloud = tmp_path / "nanint.npy"
    np.save(cloud, poisoned)
    assert infer(config, checkpoint, cloud, tmp_path / "drop", "--warmup", "0") == 0
    assert (
        f"warning: {cloud}: dropped 1 of {len(points)} points with NaN or infinite values in column(s) [3]"
        in (capsys.readouterr().err)
    )
    written = json.loads((tmp_path / "drop" / "nanint.json").read_text())
    model = pc3d.inference.load_model(config, checkpoint, optimize=True)
    clean = pc3d.inference.detect(model, np.delete(points, 100, axis=0))
    assert len(clean) > 0 and written["scores_3d"] == pytest.approx(clean.scores.tolist(), abs=1e-5)
    with pytest.warns(pc3d.io.points.NonFinitePointsWarning, match=r"column\(s\) \[3\]"):
        from_array = pc3d.inference.detect(model, poisoned)
    torch.testing.assert_close(from_array.scores, clean.scores)
    assert infer(config, checkpoint, cloud, tmp_path / "raise", "--nan-policy", "raise") == 2
    assert "1 of" in capsys.readouterr().err and not (tmp_path / "raise" / "nanint.json").exists()
    with pytest.raises(pc3d.errors.FormatError, match="which the model reads"):
        pc3d.inference.detect(model, poisoned, nan_policy="raise")


def test_png_of_an_empty_frame_is_skipped_with_a_warning(
    small: tuple[Path, Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    renderer: None,
) -> None:
    config, checkpoint, _ = small
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    out = tmp_path / "o"
    with pytest.MonkeyPatch.context() as patch:  # no detections on an empty frame, whatever the weights
        none = Detections3D(LiDARBoxes3D(torch.zeros(0, 7)), torch.zeros(0), torch.zeros(0, dtype=torch.long))
        patch.setattr(pc3d.inference, "predict", lambda *a, **k: none)
        assert infer(config, checkpoint, [empty, CLOUDS[0]], out, "--png", "--warmup", "0") == 0
    assert f"warning: {empty}: no points and no detections: no empty.png drawn" in capsys.readouterr().err
    assert not (out / "empty.png").exists() and (out / "000001.png").is_file()


def test_a_progress_bar_over_the_clouds_on_a_terminal(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    config, checkpoint, _ = small
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert infer(config, checkpoint, CLOUDS, tmp_path / "bar") == 0
    assert "infer:   0%" in sys.stderr.getvalue() and "0/2 [" in sys.stderr.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bar
    assert infer(config, checkpoint, CLOUDS, tmp_path / "log") == 0
    assert "infer:" not in sys.stderr.getvalue()


def test_warmup_runs_are_untimed_and_reported(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, checkpoint, _ = small
    calls = []
    original = pc3d.inference.predict
    monkeypatch.setattr(pc3d.inference, "predict", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert infer(config, checkpoint, CLOUDS, tmp_path / "w", "--warmup", "2") == 0
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert len(calls) == 4 and len(summary["warmup_ms"]) == 2 and summary["num_frames"] == 2
    assert all(ms > 0 for ms in summary["warmup_ms"])
    assert infer(config, checkpoint, CLOUDS[0], tmp_path / "n", "--warmup", "0") == 0
    assert json.loads((tmp_path / "n" / "summary.json").read_text())["warmup_ms"] == []


def test_convert_writes_a_native_checkpoint(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pc3d.engine.checkpoint import FORMAT, load_checkpoint

    config, checkpoint, state_dict = small
    native = tmp_path / "native.pth"
    assert (
        main(
            [
                "checkpoint",
                "convert",
                "--from",
                "mmdet3d",
                str(checkpoint),
                str(native),
                "--config",
                str(config),
            ]
        )
        == 0
    )
    state = load_checkpoint(native)
    assert state["format"] == FORMAT and state["meta"]["class_names"] == CLASSES
    assert set(state["model"]) == set(state_dict)
    a = pc3d.inference.detect(pc3d.inference.load_model(config, native), CLOUDS[0])
    b = pc3d.inference.detect(pc3d.inference.load_model(config, checkpoint), CLOUDS[0])
    assert torch.equal(a.boxes.tensor, b.boxes.tensor) and torch.equal(a.scores, b.scores)
    # Converting the converted file again says what it is.
    from pc3d.nn.checkpoint_mmdet3d import PC3D_FORMAT

    assert PC3D_FORMAT == FORMAT
    again = ["checkpoint", "convert", "--from", "mmdet3d", str(native), str(tmp_path / "again.pth")]
    assert main([*again, "--config", str(config)]) == 2
    assert "already a pc3d checkpoint" in capsys.readouterr().err and not (tmp_path / "again.pth").exists()
    # An existing OUTPUT (INPUT itself, or another checkpoint) is kept unless --overwrite.
    original = checkpoint.read_bytes()
    assert main(["checkpoint", "convert", "--from", "mmdet3d", str(checkpoint), str(checkpoint)]) == 2
    assert (
        f"{checkpoint} exists (it is INPUT); choose another OUTPUT, or pass --overwrite"
        in capsys.readouterr().err
    )
    assert checkpoint.read_bytes() == original
    before = native.read_bytes()
    assert main(["checkpoint", "convert", "--from", "mmdet3d", str(checkpoint), str(native)]) == 2
    assert native.read_bytes() == before
    assert (
        main(["checkpoint", "convert", "--from", "mmdet3d", str(checkpoint), str(native), "--overwrite"]) == 0
    )
    # A folder at OUTPUT, or a file where its folder should be: said before converting anything.
    capsys.readouterr()
    for output, message in (
        (tmp_path, f"OUTPUT {tmp_path} is a folder, expected a file to write"),
        (native / "x.pth", f"OUTPUT {native / 'x.pth'}: {native} is a file, not a folder"),
    ):
        convert = ["checkpoint", "convert", "--from", "mmdet3d", str(checkpoint), str(output), "--overwrite"]
        assert main(convert) == 2
        err = capsys.readouterr().err
        assert message in err and ".tmp" not in err
    assert native.read_bytes() != b"" and load_checkpoint(native)["format"] == FORMAT


def test_checkpoints_that_do_not_fit_name_the_keys(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, state_dict = small
    other = tmp_path / "centerpoint.pth"
    torch.save(
        {
            "meta": {"mmdet3d_version": "1.4.0"},
            "state_dict": {"pts_backbone.blocks.0.0.weight": torch.zeros(1), **state_dict},
        },
        other,
    )
    assert main(["checkpoint", "convert", "--from", "mmdet3d", str(other), str(tmp_path / "x.pth")]) == 2
    assert "pts_backbone.blocks.0.0.weight" in capsys.readouterr().err
    assert infer(config, other, CLOUDS[0], tmp_path) == 2
    assert "pts_backbone.blocks.0.0.weight" in capsys.readouterr().err
    wrong = tmp_path / "wrong.pth"
    resized = dict(state_dict, **{"bbox_head.conv_cls.weight": torch.zeros(6, 24, 1, 1)})
    torch.save({"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": resized}, wrong)
    assert infer(config, wrong, CLOUDS[0], tmp_path) == 2
    assert "bbox_head.conv_cls.weight" in capsys.readouterr().err


def test_png_rendering(small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, renderer: None) -> None:
    config, checkpoint, _ = small
    assert infer(config, checkpoint, CLOUDS[0], tmp_path, "--png") == 0
    assert (tmp_path / "000001.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.skipif(
    not (REFERENCE.is_dir() and FRAME_8.is_file()), reason=f"no MMDetection3D reference at {REFERENCE}"
)
def test_mmdetection3d_reference_checkpoint_runs_unchanged(tmp_path: Path) -> None:
    checkpoint = REFERENCE / "pointpillars_kitti-3class_seed0.pth"
    zoo_config = "pointpillars_hv-secfpn_kitti-3d-3class"
    assert infer(zoo_config, checkpoint, FRAME_8, tmp_path, "--score-thr", "0.0") == 0
    written = json.loads((tmp_path / "000008.json").read_text())
    reference = np.load(REFERENCE / "pointpillars_kitti-3class_seed0_000008.npz")
    assert len(written["scores_3d"]) == len(reference["scores"]) == 50
    assert (
        np.bincount(written["labels_3d"], minlength=3).tolist()
        == np.bincount(reference["labels"], minlength=3).tolist()
    )
    np.testing.assert_allclose(sorted(written["scores_3d"]), sorted(reference["scores"].tolist()), atol=1e-5)


def test_a_checkpoint_of_other_classes_is_refused(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _, state_dict = small
    reordered = tmp_path / "reordered.pth"
    classes = ["Car", "Pedestrian", "Cyclist"]
    torch.save(
        {
            "meta": {"mmdet3d_version": "1.4.0", "dataset_meta": {"classes": classes}},
            "state_dict": state_dict,
        },
        reordered,
    )
    assert infer(config, reordered, CLOUDS[0], tmp_path) == 2
    assert (
        "['Car', 'Pedestrian', 'Cyclist'] differ from the config's ['Pedestrian', 'Cyclist', 'Car']"
        in capsys.readouterr().err
    )
    override = "class_names=[Car, Pedestrian, Cyclist]"
    assert infer(config, reordered, CLOUDS[0], tmp_path, "--set", override) == 0
    assert json.loads((tmp_path / "000001.json").read_text())["class_names"] == classes


def test_segmentation_writes_per_point_labels(
    tmp_path: Path, renderer: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A segmentation config: one label per point, as .npy or SemanticKITTI-style .label, and a
    PNG coloured by class."""
    from pc3d.config import build, load_config
    from pc3d.io.semseg import read_point_labels

    pytest.importorskip("pc3d_seg")
    config = load_config("sparseunet_synthetic-lidar")
    torch.manual_seed(0)
    model = build(config.node("model"), kind="model")
    checkpoint = tmp_path / "seg.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    cloud = tmp_path / "scan.npy"
    np.save(cloud, (np.random.default_rng(0).random((500, 4)) * [20, 20, 2, 1]).astype(np.float32))
    out = tmp_path / "out"
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, out, "--png") == 0
    labels = read_point_labels(out / "scan.npy", 500)
    assert labels.shape == (500,) and labels.min() >= 0 and labels.max() < 7
    assert (out / "scan.png").is_file()
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, out, "--format", "label") == 0
    assert np.array_equal(read_point_labels(out / "scan.label", 500), labels)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_frames"] == 1 and summary["frames"][0]["num_points"] == 500
    assert summary["optimized"] is False  # a segmentation model has no inference copy
    capsys.readouterr()
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, out, "--format", "kitti") == 2
    assert "--format kitti writes 3D detections, and PointSegmentor labels points" in capsys.readouterr().err
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, out / "thr", "--score-thr", "0.5") == 0
    assert (
        "--score-thr do not apply to a segmentation model (PointSegmentor): ignored"
        in capsys.readouterr().err
    )
    # Points with NaN or inf: not read by the model, labelled -1, so the file lines up with the cloud.
    holes = np.load(cloud)
    holes[[3, 40], 1] = np.nan
    holes[100, 3] = np.inf
    np.save(cloud, holes)
    capsys.readouterr()
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, out / "holes") == 0
    assert "dropped 3 of 500 points" in capsys.readouterr().err
    with_holes = read_point_labels(out / "holes" / "scan.npy", 500)
    assert with_holes[[3, 40, 100]].tolist() == [-1, -1, -1]
    assert (np.delete(with_holes, [3, 40, 100]) >= 0).all()


def test_checkpoint_info_describes_each_kind(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, state_dict = small
    values = f"{sum(int(v.numel()) for v in state_dict.values()):,} values"
    assert main(["checkpoint", "info", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "MMDetection3D 1.4.0 checkpoint" in out and "Pedestrian, Cyclist, Car" in out
    assert f"{len(state_dict)} tensors, {values}" in out and "bbox_head" in out
    native = tmp_path / "native.pth"
    assert main(["checkpoint", "convert", "--from", "mmdet3d", str(checkpoint), str(native)]) == 0
    capsys.readouterr()
    assert main(["checkpoint", "info", str(native)]) == 0
    out = capsys.readouterr().out
    assert (
        "pc3d checkpoint v1" in out and re.search(r"converted +from mmdet3d 1\.4\.0", out) and values in out
    )
    plain = tmp_path / "plain.pth"
    torch.save(state_dict, plain)
    assert main(["checkpoint", "info", str(plain)]) == 0
    assert "a plain state dict" in capsys.readouterr().out
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(native.read_bytes()[:1000])
    assert main(["checkpoint", "info", str(truncated)]) == 2
    assert str(truncated) in capsys.readouterr().err


def test_checkpoint_info_match_names_the_shipped_config_the_weights_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    weights = pc3d.inference.load_model("pointpillars_hv-secfpn_kitti-3d-3class").state_dict()
    fitting = tmp_path / "pillars.pth"
    torch.save(
        {
            "meta": {
                "mmdet3d_version": "1.4.0",
                "dataset_meta": {"classes": ["Car", "Pedestrian", "Cyclist"]},
            },
            "state_dict": weights,
        },
        fitting,
    )
    assert main(["checkpoint", "info", str(fitting), "--match"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"fits +pointpillars_hv-secfpn_kitti-3d-3class \(its classes are "
        r"\['Pedestrian', 'Cyclist', 'Car'\]; the checkpoint's \['Car', 'Pedestrian', 'Cyclist'\]\)",
        out,
    )
    assert "no shipped config" not in out
    resized = dict(weights, **{"bbox_head.conv_cls.weight": torch.zeros(6, 384, 1, 1)})
    torch.save(resized, tmp_path / "resized.pth")
    assert main(["checkpoint", "info", str(tmp_path / "resized.pth"), "--match"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fits +no shipped config", out)
    assert re.search(
        r"closest +pointpillars_hv-secfpn_kitti-3d-3class: 1 keys with other shapes: "
        r"bbox_head\.conv_cls\.weight: checkpoint \(6, 384, 1, 1\) vs model \(18, 384, 1, 1\)",
        out,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_without_a_cuda_device_is_a_one_line_error(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    assert infer(config, checkpoint, CLOUDS[0], tmp_path / "o", "--device", "cuda") == 2
    assert "device 'cuda' asked for, but torch sees no CUDA device" in capsys.readouterr().err
    with pytest.raises(pc3d.errors.Pc3dError, match="torch sees no CUDA device"):
        pc3d.inference.load_model(config, device="cuda:0")


def test_unknown_config_keys_are_refused_as_by_train_and_test(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    assert infer(config, checkpoint, CLOUDS[0], tmp_path / "o", "--set", "runtime.devise=cpu") == 2
    assert "unknown key 'devise' (did you mean 'device'?)" in capsys.readouterr().err
    with pytest.raises(pc3d.errors.Pc3dError, match="unknown top-level key 'trian'"):
        pc3d.inference.load_model(config, overrides=["trian.grad_clip=3"])


def test_an_out_dir_that_is_a_file_is_refused_before_the_model_loads(
    small: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, checkpoint, _ = small
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    assert infer(config, checkpoint, CLOUDS[0], taken) == 2
    assert f"--out-dir {taken} is a file, not a folder" in capsys.readouterr().err
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize(
    ("config", "plugin", "model"),
    [
        ("retinanet_r18-fpn_shapes", "pc3d_det2d", "RetinaNet"),
        ("lenet5_digits", "pc3d_classification", "ImageClassifier"),
        ("fcn_r18_shapes", "pc3d_seg", "ImageSegmentor"),
    ],
)
def test_an_image_model_is_refused_before_any_cloud_is_read(
    config: str, plugin: str, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pc3d.config import build, load_config

    pytest.importorskip(plugin)
    built = build(load_config(config).node("model"), kind="model")
    checkpoint = tmp_path / "image_model.pth"
    torch.save({"model": built.state_dict()}, checkpoint)
    missing = tmp_path / "never_read.bin"
    missing.write_bytes(b"\0" * 7)  # not a valid cloud: reading it would be a different error
    assert infer(config, checkpoint, missing, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{type(built).__name__} is an image model (its predict takes images); pc3d infer" in err
    assert type(built).__name__ == model and "this is a bug" not in err
    with pytest.raises(pc3d.errors.Pc3dError, match="is an image model"):
        pc3d.inference.predict(built, np.zeros((4, 4), np.float32))


def test_a_segmentation_checkpoint_of_other_classes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pc3d training checkpoint records the classes its model took (config.model.class_names):
    a segmentor built with them in another order, or other ones, is refused rather than mislabel."""
    from pc3d.config import build, load_config
    from pc3d.engine.checkpoint import FORMAT, save_checkpoint

    pytest.importorskip("pc3d_seg")
    config = load_config("sparseunet_synthetic-lidar")
    model = build(config.node("model"), kind="model")
    assert model.class_names == config["class_names"]
    checkpoint = tmp_path / "seg.pth"
    save_checkpoint({"format": FORMAT, "model": model.state_dict(), "config": config.data}, checkpoint)
    cloud = tmp_path / "scan.npy"
    np.save(cloud, (np.random.default_rng(0).random((200, 4)) * [20, 20, 2, 1]).astype(np.float32))
    assert infer("sparseunet_synthetic-lidar", checkpoint, cloud, tmp_path / "same") == 0
    swapped = list(reversed(config["class_names"]))
    assert (
        infer(
            "sparseunet_synthetic-lidar", checkpoint, cloud, tmp_path / "o", "--set", f"class_names={swapped}"
        )
        == 2
    )
    assert (
        f"the checkpoint's classes {config['class_names']} differ from the config's {swapped}"
        in capsys.readouterr().err
    )
    assert (
        infer("sparseunet_synthetic-lidar", checkpoint, cloud, tmp_path / "o", "--set", "class_names=[a, b]")
        == 2
    )
    assert (
        "model.class_names lists 2 classes (a, b) but model.head.num_classes is 7" in capsys.readouterr().err
    )
    # Given to a detector's config, the error says first what the checkpoint holds.
    assert infer(NARROW, checkpoint, CLOUDS[0], tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert (
        f"{checkpoint}: its weights do not fit VoxelDetector (it holds a PointSegmentor of classes ground, car,"
        in err
    )


def test_a_bin_of_fewer_columns_than_the_model_reads_suggests_num_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S3DIS's models read x, y, z and colour (6 values); a .bin is read as 4 per point by default."""
    from pc3d.config import build, load_config

    pytest.importorskip("pc3d_seg")
    model = build(load_config("pointnet2_s3dis").node("model"), kind="model")
    checkpoint = tmp_path / "s3dis.pth"
    torch.save({"model": model.state_dict()}, checkpoint)
    room = tmp_path / "room.bin"
    (np.random.default_rng(0).random((300, 6)) * [4, 4, 3, 1, 1, 1]).astype(np.float32).tofile(room)
    assert infer("pointnet2_s3dis", checkpoint, room, tmp_path / "o") == 2
    assert "if its records hold 6, pass --num-features 6" in capsys.readouterr().err
    assert infer("pointnet2_s3dis", checkpoint, room, tmp_path / "o", "--num-features", "6") == 0
    assert pc3d.io.semseg.read_point_labels(tmp_path / "o" / "room.npy", 300).shape == (300,)
    # An empty room (or one whose every point holds NaN): an empty label file, not a model error.
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert infer("pointnet2_s3dis", checkpoint, empty, tmp_path / "e", "--num-features", "6") == 0
    assert pc3d.io.semseg.read_point_labels(tmp_path / "e" / "empty.npy", 0).shape == (0,)
