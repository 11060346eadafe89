"""The main job end to end, shrunk to a few scenes and one epoch: every file it promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pc3d.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_demo_writes_everything_it_promises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], renderer: None
) -> None:
    settings = DemoSettings(
        work_dir=tmp_path / "demo",
        scenes=6,
        renders=1,
        workers=1,
        overrides=["schedule.epochs=1", "data.train.batch_size=2", "data.train.num_workers=0"],
    )
    summary = run_demo(settings)
    out = settings.work_dir
    for name in ("model.pth", "config.yaml", "metrics.json", "loss.png", "pr_curves.png", "report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"Pedestrian", "Cyclist", "Car"}
    assert "AP40" in metrics["Car"]["strict"]["bev"]["moderate"]
    assert {"Car_BEV_AP40_moderate", "seconds_training"} <= set(summary)
    assert (out / "kitti_000001_bev.png").is_file()
    assert len(list(out.glob("val_*_bev.png"))) == 1 and len(list(out.glob("val_*_orbit.png"))) == 1
    report = (out / "report.md").read_text()
    assert "BEV AP40 moderate" in report and "![loss](loss.png)" in report
    # The written config and checkpoint rebuild the trained model.
    from pc3d.config import build, load_config
    from pc3d.engine.checkpoint import load_checkpoint

    model = build(load_config(out / "config.yaml").node("model"), kind="model")
    model.load_state_dict(load_checkpoint(out / "model.pth")["model"])
    assert "KITTI evaluation" in capsys.readouterr().out
