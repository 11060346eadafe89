"""``pc3d train`` / ``pc3d test`` on the shipped digits configs (in-process through the CLI)."""

from __future__ import annotations

import json

import pytest
import torch

from pc3d.cli import main

pytest.importorskip("sklearn.datasets")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # The configs set runtime.num_threads; give the process its setting back afterwards.
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_smoke_writes_checkpoints_and_metrics_then_tests(tmp_path, capsys):
    work = tmp_path / "work"
    overrides = [
        "data.train.batch_size=16",
        "schedule.epochs=null",
        "schedule.iterations=6",
        "train.eval_every=3",
        "train.checkpoint_every=3",
        "train.keep_last=null",
        "train.log_every=2",
    ]
    assert main(["train", "lenet5_digits.yaml", "--work-dir", str(work), "--set", *overrides]) == 0
    assert {"iter_3.pth", "iter_6.pth", "best.pth", "config.yaml", "metrics.jsonl", "log.jsonl"} <= {
        p.name for p in work.iterdir()
    }
    records = read_jsonl(work / "metrics.jsonl")
    assert [r["iteration"] for r in records] == [3, 6]
    for record in records:
        assert 0.0 <= record["top1"] <= record["top5"] <= 1.0
    losses = [r["loss"] for r in read_jsonl(work / "log.jsonl") if r.get("kind") == "train"]
    assert losses and all(v == v and v > 0 for v in losses)  # logged and finite

    capsys.readouterr()
    result = tmp_path / "results.json"
    assert main(["test", "lenet5_digits.yaml", str(work / "iter_6.pth"), "--json", str(result)]) == 0
    written = json.loads(result.read_text())
    assert written["split"] == "test" and written["num_samples"] == 360 and written["iteration"] == 6
    # The same weights on the same split give the number the training run logged.
    assert written["top1"] == pytest.approx(records[-1]["top1"]) and written["top5"] == pytest.approx(
        records[-1]["top5"]
    )
    assert "top1" in capsys.readouterr().out


def test_train_names_num_classes_when_the_data_has_more_classes(tmp_path, capsys):
    # The digits have ten classes; a five-class head meets labels 5..9 in its first batch.
    overrides = [
        "model.head.num_classes=5",
        "data.train.batch_size=64",
        "schedule.epochs=null",
        "schedule.iterations=2",
    ]
    assert (
        main(["train", "lenet5_digits.yaml", "--work-dir", str(tmp_path / "work"), "--set", *overrides]) == 2
    )
    err = capsys.readouterr().err
    assert (
        "pc3d train: error: labels must lie in [0, 5) = [0, num_classes) (model.head.num_classes); got 5, 6, 7, 8, 9 in the batch"
        in err
    )


@pytest.mark.slow
def test_lenet5_digits_config_reaches_97_percent(tmp_path):
    """The shipped config, unchanged: 20 epochs (~15 s on one core), test accuracy >= 97 %."""
    work = tmp_path / "lenet"
    assert main(["train", "lenet5_digits.yaml", "--work-dir", str(work)]) == 0
    last = read_jsonl(work / "metrics.jsonl")[-1]
    assert last["epoch"] == 20 and last["top1"] >= 0.97, last
    result = tmp_path / "results.json"
    assert main(["test", "lenet5_digits.yaml", str(work / "best.pth"), "--json", str(result)]) == 0
    assert json.loads(result.read_text())["top1"] >= 0.97
