"""`pc3d train` / `pc3d test` from the command line (in-process through `pc3d.cli.main`, with the
plugins installed here plus the engine's test plugin), and a smoke run of the det3d plugin's
tiny detector on real KITTI frames."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys

import engine_testplugin
import pytest
import torch
import yaml

from conftest import REPO
from pc3d.cli import main
from pc3d.plugin_manager import get_plugin_manager, get_registry

KITTI = REPO / "tests" / "data" / "kitti" / "training"


@pytest.fixture
def cli_plugins():
    """The process-wide plugins (det3d and the others installed) plus the test plugin."""
    if ("model", "TinyRegressor") not in get_registry():
        get_plugin_manager().register_plugin(engine_testplugin, "engine-test")


def test_train_then_test_with_json(write_config, tmp_path, cli_plugins, capsys):
    config = write_config({"schedule": {"epochs": 2}})
    work = tmp_path / "work"
    assert (
        main(["train", str(config), "--work-dir", str(work), "--set", "optimizer.lr=0.02", "--deterministic"])
        == 0
    )
    assert (work / "epoch_2.pth").is_file()
    # --set reached the run, and the resolved config in the work dir says so.
    assert "# --set optimizer.lr=0.02" in (work / "config.yaml").read_text()
    assert torch.load(work / "epoch_2.pth", weights_only=True)["config"]["optimizer"]["lr"] == 0.02
    # --deterministic is on the record.
    start = next(
        json.loads(line) for line in (work / "log.jsonl").read_text().splitlines() if '"start"' in line
    )
    assert start["deterministic"] is True

    capsys.readouterr()
    result = tmp_path / "out" / "metrics.json"
    assert main(["test", str(config), str(work / "epoch_2.pth"), "--json", str(result)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(result.read_text())
    last_eval = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    assert written["mse"] == pytest.approx(last_eval["mse"], rel=1e-6)
    assert written["count"] == 32.0 and written["iteration"] == 16 and written["epoch"] == 2
    assert written["split"] == "val" and written["checkpoint"] == str(work / "epoch_2.pth")
    assert "mse" in printed


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (progress bars draw only on one)."""

    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_for_validation_and_test(
    write_config, tmp_path, cli_plugins, monkeypatch
):
    config = write_config({"schedule": {"epochs": 1}})
    work = tmp_path / "work"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["train", str(config), "--work-dir", str(work)]) == 0
    assert main(["test", str(config), str(work / "epoch_1.pth")]) == 0
    shown = terminal.getvalue()
    # The validation set is 32 samples in batches of 16: two batches, in both passes (the bars
    # are cleared when done, so what stays in the stream is their first drawing).
    assert "validate:   0%" in shown and "test (val):   0%" in shown and "0/2 [" in shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: no bar
    assert main(["test", str(config), str(work / "epoch_1.pth")]) == 0
    assert "test (val)" not in sys.stderr.getvalue()


def test_test_checks_its_json_path_before_evaluating(
    write_config, tmp_path, cli_plugins, capsys, monkeypatch
):
    config = write_config({"schedule": {"epochs": 1}})
    assert main(["train", str(config), "--work-dir", str(tmp_path / "w")]) == 0
    import pc3d.engine.runner

    monkeypatch.setattr(pc3d.engine.runner, "run_test", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("")
    capsys.readouterr()
    assert (
        main(["test", str(config), str(tmp_path / "w" / "epoch_1.pth"), "--json", str(tmp_path / "folder")])
        == 2
    )
    assert f"--json {tmp_path / 'folder'} is a folder, expected a file to write" in capsys.readouterr().err
    assert (
        main(
            [
                "test",
                str(config),
                str(tmp_path / "w" / "epoch_1.pth"),
                "--json",
                str(tmp_path / "afile" / "m.json"),
            ]
        )
        == 2
    )
    assert f"{tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err


def test_load_from_on_the_command_line(write_config, tmp_path, cli_plugins):
    config = write_config({"schedule": {"epochs": 1}})
    assert main(["train", str(config), "--work-dir", str(tmp_path / "a")]) == 0
    assert (
        main(
            [
                "train",
                str(config),
                "--work-dir",
                str(tmp_path / "b"),
                "--load-from",
                str(tmp_path / "a/epoch_1.pth"),
            ]
        )
        == 0
    )
    log = (tmp_path / "b" / "log.jsonl").read_text()
    assert '"kind": "load_from"' in log

    # Starting from trained weights, the first loss is far below a fresh start's.
    def first(work):
        return next(
            json.loads(x)["loss"] for x in (work / "log.jsonl").read_text().splitlines() if '"train"' in x
        )

    assert first(tmp_path / "b") < 0.5 * first(tmp_path / "a")


def test_errors_are_one_line_with_exit_status_2(write_config, tmp_path, cli_plugins, capsys):
    config = write_config({"runtime": {"sed": 1}})
    assert main(["train", str(config), "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pc3d train: error: runtime.sed" in err and "did you mean 'seed'?" in err

    good = write_config({"schedule": {"epochs": 1}}, name="good.yaml")
    assert main(["train", str(good), "--work-dir", str(tmp_path / "w")]) == 0
    checkpoint = tmp_path / "w" / "epoch_1.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    capsys.readouterr()
    assert main(["train", str(good), "--work-dir", str(tmp_path / "w"), "--resume"]) == 2
    assert f"pc3d train: error: checkpoint {checkpoint} is truncated or corrupt" in capsys.readouterr().err
    assert main(["test", str(good), str(checkpoint)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_det3d_tiny_detector_trains_and_tests_through_the_cli(tmp_path, cli_plugins):
    """The det3d plugin's BEVDetector fits the engine's model contract as it is: loss(points,
    gt_boxes, gt_labels) and predict(points)."""
    if ("model", "BEVDetector") not in get_registry():
        pytest.skip("the det3d plugin is not installed")
    dataset = {
        "type": "KittiMiniDataset",
        "root": str(KITTI),
        "frames": [1, 2, 4],
        "class_names": ["Car", "Pedestrian", "Cyclist"],
        "max_points": 8000,
    }
    config = {
        "_base_": "pillar-center-tiny_kitti-3class.yaml",
        "data": {
            "train": {"dataset": dataset, "batch_size": 2},
            "val": {"dataset": {**dataset, "frames": [1]}, "batch_size": 1},
        },
        "metrics": [{"type": "DetectionCount"}],
        "optimizer": {"type": "AdamW", "lr": 0.001, "weight_decay": 0.01, "paramwise": {"norm_decay": 0.0}},
        "schedule": {"iterations": 2},
        "train": {"log_every": 1, "grad_clip": {"max_norm": 10.0}},
        "runtime": {"num_threads": 1},
    }
    path = tmp_path / "bevdet.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", str(path), "--work-dir", str(tmp_path / "work")]) == 0
    records = [json.loads(x) for x in (tmp_path / "work" / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["iteration"] for r in train] == [1, 2]
    assert all({"loss", "loss_heatmap", "loss_regression", "grad_norm"} <= set(r) for r in train)
    evaluation = json.loads((tmp_path / "work" / "metrics.jsonl").read_text())
    assert evaluation["gt_per_sample"] > 0
    result = tmp_path / "test.json"
    final = tmp_path / "work" / (tmp_path / "work" / "last_checkpoint").read_text().strip()
    assert main(["test", str(path), str(final), "--json", str(result)]) == 0
    assert json.loads(result.read_text())["detections_per_sample"] == evaluation["detections_per_sample"]


@pytest.mark.parametrize("command", ["train", "test"])
def test_help_gives_a_plain_sentence_and_every_argument_a_help(command):
    from pc3d.cli import build_parser, subcommands

    parser = subcommands(build_parser([command])).build(command)
    description = parser.description or ""
    assert description[0].isupper() and description.endswith(".") and description.count(". ") == 0
    assert "`" not in description
    undocumented = [
        action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert undocumented == []


def test_the_command_modules_import_neither_torch_nor_the_engine():
    # `pc3d --help` builds no command parser, but listing and building these must stay light too.
    code = (
        "import sys, pc3d.cli.train, pc3d.cli.test\n"
        "from pc3d.cli import build_parser, subcommands\n"
        "commands = subcommands(build_parser(['train']))\n"
        "commands.build('train'); commands.build('test')\n"
        "print(sorted(m for m in ('torch', 'pc3d.engine', 'pc3d.config') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("fail_in", ["loss", "predict"])
def test_an_error_the_model_raises_is_one_line(write_config, tmp_path, cli_plugins, capsys, fail_in):
    # A head that checks its labels raises a Pc3dError naming the config key; the engine lets it
    # through unchanged, and the command prints it as one line (no traceback) with status 2.
    config = write_config({"model": {"fail_in": fail_in}, "schedule": {"epochs": 1}})
    capsys.readouterr()
    assert main(["train", str(config), "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    line = "pc3d train: error: model.head.num_classes: label 7 is outside 0..2 in this batch\n"
    assert err.endswith(line) and "Traceback" not in err
    if fail_in == "predict":
        good = write_config({"schedule": {"epochs": 1}}, name="good.yaml")
        assert main(["train", str(good), "--work-dir", str(tmp_path / "good")]) == 0
        capsys.readouterr()
        assert main(["test", str(config), str(tmp_path / "good" / "epoch_1.pth")]) == 2
        assert capsys.readouterr().err == line.replace("pc3d train", "pc3d test")
