"""Training-curve and precision-recall plots: files that show what the records hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pc3d.errors import FormatError
from pc3d.vis.plots import plot_pr_curves, plot_training_curves, read_jsonl

PIL = pytest.importorskip("PIL.Image")


def _write_run(folder: Path) -> None:
    folder.mkdir()
    train = [
        {
            "kind": "train",
            "iteration": i,
            "loss": 2.0 / (1 + i),
            "loss_cls": 1.0 / (1 + i),
            "lr": 0.001 * (1 + i % 3),
        }
        for i in range(0, 50, 5)
    ]
    evals = [
        {"epoch": e, "iteration": 10 * e, "Car_BEV_AP40_moderate": 20.0 * e, "mAP": 10.0 * e}
        for e in range(1, 5)
    ]
    (folder / "log.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in train) + '{"kind": "tra'
    )  # torn last line
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))


def _colours(path: Path) -> np.ndarray:
    return np.asarray(PIL.open(path).convert("RGB"))


def test_training_curves_png(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    out = plot_training_curves(tmp_path / "run")
    assert out == tmp_path / "run" / "curves.png"
    image = _colours(out)
    assert image.shape[1] > 1000  # three panels
    # matplotlib's first two line colours (tab:blue, tab:orange) are drawn.
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(image.astype(int) - rgb).sum(-1) < 30).sum() > 50


def test_training_curves_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="log.jsonl"):
        plot_training_curves(tmp_path)
    (tmp_path / "log.jsonl").write_text('{"kind": "event"}\nnot json\n{"kind": "train"}\n')
    with pytest.raises(FormatError, match=r"log\.jsonl:2: not JSON"):
        read_jsonl(tmp_path / "log.jsonl")


class _Result:
    classes = ("Car", "Pedestrian")
    precision = np.broadcast_to(np.linspace(1.0, 0.0, 41), (2, 2, 4, 3, 41)).copy()
    precision[1] = 0.5  # the second class: flat, so both classes' lines show
    ap40 = precision[..., 1:].sum(-1) / 40 * 100


def test_pr_curves_png(tmp_path: Path) -> None:
    out = plot_pr_curves(_Result(), tmp_path / "pr.png")
    image = _colours(out)
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(image.astype(int) - rgb).sum(-1) < 30).sum() > 100
    with pytest.raises(FormatError, match="strict"):
        plot_pr_curves(_Result(), tmp_path / "x.png", overlap="medium")


def test_training_curves_choose_the_metrics(tmp_path: Path) -> None:
    _write_run(tmp_path / "run")
    # Only the requested metric is drawn: the validation panel holds one line (tab:blue) and not
    # the second one (tab:orange) it would draw by default.
    out = plot_training_curves(tmp_path / "run", tmp_path / "one.png", metrics=["mAP"])
    image = _colours(out)
    third = image[:, 2 * image.shape[1] // 3 :]
    assert (np.abs(third.astype(int) - (31, 119, 180)).sum(-1) < 30).sum() > 20
    assert (np.abs(third.astype(int) - (255, 127, 14)).sum(-1) < 30).sum() == 0
