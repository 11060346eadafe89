"""`pc3d plot` (training curves) and `pc3d kitti-eval --plot` (precision-recall curves)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pc3d.cli import main

pytest.importorskip("matplotlib")

CAR = "Car 0.00 0 -1.58 {l:.2f} 150.00 {r:.2f} 210.00 1.50 1.60 3.90 {x:.2f} 1.60 20.00 0.30"
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)


def _near(path: Path, rgb: tuple[int, int, int]) -> int:
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(img - rgb).sum(-1) < 30).sum())


def _run(folder: Path) -> Path:
    folder.mkdir()
    train = [
        {"kind": "train", "iteration": i, "loss": 2.0 / (1 + i), "loss_cls": 1.0 / (1 + i), "lr": 1e-3}
        for i in range(0, 60, 5)
    ]
    evals = [{"epoch": e, "iteration": 20 * e, "mAP": 10.0 * e} for e in range(1, 4)]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    return folder


def test_plot_writes_the_training_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path / "run")
    assert main(["plot", str(run)]) == 0
    assert f"wrote {run / 'curves.png'}" in capsys.readouterr().out
    out = tmp_path / "sub" / "c.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    for rgb in (TAB_BLUE, TAB_ORANGE):
        assert _near(out, rgb) > 50
    assert Image.open(out).size[0] > 1000  # three panels: losses, learning rate, validation


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plot", "nowhere"], "nowhere is not a folder"),
        (["plot", "empty"], "log.jsonl does not exist"),
        (["plot", "run", "--out", "c.jpg"], "must be a .png"),
    ],
)
def test_plot_errors_exit_2(
    args: list[str], message: str, tmp_path: Path, cli_error: Callable[[list[str]], str]
) -> None:
    (tmp_path / "empty").mkdir()
    _run(tmp_path / "run")
    assert message in cli_error(args)


def test_plot_help_imports_no_matplotlib_or_torch() -> None:
    code = (
        "import sys; from pc3d.cli import main\ntry:\n    main(['plot', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def _frames(folder: Path, score: bool) -> Path:
    folder.mkdir()
    for f in range(3):
        lines = [
            CAR.format(l=10.0 + 110 * i, r=90.0 + 110 * i, x=-10.0 + 5 * i)
            + (f" {0.5 + 0.05 * i:.2f}" if score else "")
            for i in range(4)
        ]
        (folder / f"{f:06d}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_kitti_eval_plot_draws_the_pr_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, det = _frames(tmp_path / "gt", False), _frames(tmp_path / "det", True)
    out = tmp_path / "pr.png"
    assert main(["kitti-eval", str(gt), str(det), "--classes", "Car", "--plot", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert _near(out, TAB_BLUE) > 100  # the Car lines
    assert Image.open(out).size[0] > 1200  # three panels: 2D box, BEV, 3D


def test_kitti_eval_plot_must_be_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, det = _frames(tmp_path / "gt", False), _frames(tmp_path / "det", True)
    assert main(["kitti-eval", str(gt), str(det), "--plot", str(tmp_path / "pr.svg")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "pr.svg").exists()
