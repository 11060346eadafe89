"""`pc3d train` / `pc3d test` on the shipped configs: a shortened shapes RetinaNet run, and the
real-image sanity check (a small RetinaNet overfits the two KITTI sample images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pc3d.cli import main

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "configs" / "det2d"
SHAPES = str(CONFIGS / "retinanet_r18-fpn_shapes.yaml")


def small_shapes(data: Path) -> list[str]:
    """``--set`` overrides that generate a small shapes set in ``data``: 8 training, 4 validation
    images."""
    return [
        f"data.train.dataset.root={data}",
        f"data.val.dataset.root={data}",
        "data.train.dataset.generate.num_images=8",
        "data.val.dataset.generate.num_images=4",
    ]


def test_pc3d_train_and_test_on_the_shapes_retinanet_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "shapes"
    shorten = [*small_shapes(data), "data.train.batch_size=4", "schedule.epochs=2", "schedule.warmup.iters=2"]
    work = tmp_path / "work"
    assert main(["train", SHAPES, "--work-dir", str(work), "--set", *shorten]) == 0
    assert (work / "epoch_2.pth").is_file() and (data / "annotations" / "val.json").is_file()
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert any(r.get("kind") == "train" and r.get("loss", 0) > 0 for r in records)
    evaluation = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    assert evaluation["iteration"] == 4 and set(evaluation) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}

    capsys.readouterr()
    result = tmp_path / "test.json"
    checkpoint = str(work / "epoch_2.pth")
    assert main(["test", SHAPES, checkpoint, "--json", str(result), "--set", *small_shapes(data)]) == 0
    written = json.loads(result.read_text())
    assert written["num_samples"] == 4 and written["split"] == "val"
    assert written["AP50"] == pytest.approx(evaluation["AP50"], abs=1e-9)  # same weights, same images
    assert "AP50" in capsys.readouterr().out


def test_pc3d_train_names_num_classes_when_the_data_has_more_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shapes set has three classes (labels 0, 1, 2); a head set to one class sees labels 1
    # and 2 in the first batch, which the loss reports against the config key.
    data = tmp_path / "shapes"
    overrides = [*small_shapes(data), "data.train.batch_size=8", "model.head.num_classes=1"]
    assert main(["train", SHAPES, "--work-dir", str(tmp_path / "work"), "--set", *overrides]) == 2
    err = capsys.readouterr().err
    assert (
        "pc3d train: error: gt_labels must lie in [0, 1) = [0, num_classes) (model.head.num_classes); got 1, 2 in the batch"
        in err
    )


def test_a_small_retinanet_overfits_the_kitti_sample_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the config's paths are relative to the repository root
    work = tmp_path / "work"
    data = tmp_path / "kitti-images"
    args = ["--set", f"data.train.dataset.root={data}"]  # data.val is ${data.train} in this config
    assert (
        main(["train", str(CONFIGS / "retinanet_r18-fpn_kitti-images.yaml"), "--work-dir", str(work), *args])
        == 0
    )
    evaluation = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    assert evaluation["AP50"] >= 0.9, evaluation
