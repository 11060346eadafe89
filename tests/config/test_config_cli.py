"""`pc3d config show CONFIG [--set ...]` and `pc3d config list`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from pc3d.cli import main
from pc3d.cli.config import register

pytestmark = pytest.mark.usefixtures("fresh_plugins")


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text("model:\n  type: BEVDetector\n  width: 8\ntrain: {lr: 0.01}\n")
    path = tmp_path / "child.yaml"
    path.write_text("_base_: base.yaml\nmodel:\n  width: 16\n")
    return path


def test_show_prints_the_resolved_yaml_with_overrides(config_file, capsys):
    status = main(
        [
            "config",
            "show",
            str(config_file),
            "--set",
            "train.lr=0.002",
            "model.depth=3",
            "--set",
            "tags=[a, b]",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == {
        "model": {"type": "BEVDetector", "width": 16, "depth": 3},
        "train": {"lr": 0.002},
        "tags": ["a", "b"],
    }
    assert "tags: [a, b]\n" in out


def test_show_sources_lists_where_each_key_was_set(config_file, capsys):
    assert main(["config", "show", str(config_file), "--sources", "--set", "train.lr=1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split(None, 1)[1] for line in lines}
    assert table["model.type"] == f"{config_file.parent / 'base.yaml'}:2"
    assert table["model.width"] == f"{config_file}:3"
    assert table["train.lr"] == "--set train.lr=1"
    assert [line.split()[0] for line in lines] == ["model", "model.type", "model.width", "train", "train.lr"]


def test_show_errors_exit_2_with_the_message(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("_base_: missing_base.yaml\n")
    assert main(["config", "show", str(broken)]) == 2
    assert f"pc3d config: error: {broken}:1: _base_ 'missing_base.yaml' not found" in capsys.readouterr().err
    assert main(["config", "show", str(tmp_path / "nope.yaml")]) == 2
    assert "config" in capsys.readouterr().err


def test_show_a_shipped_config_by_name_and_check_it(capsys):
    assert main(["config", "show", "pillar-center-tiny_kitti-3class", "--check"]) == 0
    shown = capsys.readouterr()
    # stdout: the YAML alone; the verdict on stderr
    assert shown.err == "pc3d config: pillar-center-tiny_kitti-3class: check passed\n"
    resolved = yaml.safe_load(shown.out)
    assert resolved["model"]["head"]["type"] == "CenterHead"
    status = main(
        [
            "config",
            "show",
            "pillar-center-tiny_kitti-3class.yaml",
            "--check",
            "--set",
            "model.head.num_clases=4",
        ]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "model.head.num_clases (from --set model.head.num_clases=4): unknown argument" in err
    assert "did you mean 'num_classes'?" in err


def test_list_shows_the_configs_plugins_ship(capsys):
    assert main(["config", "list"]) == 0
    names = {Path(line).name for line in capsys.readouterr().out.splitlines()}
    assert {
        "pillar-center-tiny_kitti-3class.yaml",
        "convnet-small_cifar10.yaml",
        "retinanet_r18-fpn_shapes.yaml",
        "lenet5_digits.yaml",
        "pointnet-tiny_semantickitti.yaml",
    } <= names


def test_list_says_where_each_config_comes_from(capsys):
    assert main(["config", "list"]) == 0
    rows = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    source = {Path(path).name: who for who, path in rows}
    # First-party configs are the core's model zoo (configs/); a plugin's own are named after it.
    assert source["pillar-center-tiny_kitti-3class.yaml"] == "core"
    assert source["retinanet_r18-fpn_shapes.yaml"] == "core"
    assert source["shapes96_adamw-10e.yaml"] == "core"  # bases are listed too
    assert all(Path(path).is_file() for _, path in rows)


def test_check_rejects_keys_the_engine_does_not_know(capsys):
    status = main(
        ["config", "show", "pillar-center-tiny_kitti-mini-3class", "--check", "--set", "train.lr=0.002"]
    )
    assert status == 2
    assert "train.lr (from --set train.lr=0.002): unknown key 'lr'" in capsys.readouterr().err


def test_help_texts_are_one_line_and_every_argument_has_one():
    top = argparse.ArgumentParser(prog="pc3d")
    commands = top.add_subparsers()
    register(commands)
    config = commands.choices["config"]
    actions = next(a for a in config._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {"config": config, **actions.choices}
    summaries = [choice.help for choice in [*commands._choices_actions, *actions._choices_actions]]
    for name, parser in parsers.items():
        assert parser.description and not parser.description.startswith("`"), name
        for action in parser._actions:
            if action.dest != "help" and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"pc3d config {name}: {action.dest} has no help"
    for text in summaries:
        assert text and "\n" not in text and not text.startswith("`"), text


def test_a_config_of_a_plugin_that_is_not_loaded_says_so(monkeypatch, capsys, tmp_path):
    import shutil

    from pc3d.config.zoo import ZOO_DIR

    # A config shipped inside a package (as a third-party plugin ships its own) whose plugin is
    # blocked: the error says which plugins are installed and that the provider may be missing.
    package = tmp_path / "pc3d_det3d_configs"
    (package / "configs").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    config = package / "configs" / "pillar-center-tiny_kitti-3class.yaml"
    shutil.copy(ZOO_DIR / "pillar-center" / config.name, config)
    monkeypatch.setenv("PC3D_BLOCK_PLUGINS", "det3d")
    assert main(["config", "show", str(config), "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"model.type (from {config}:7): unknown model 'BEVDetector'" in err
    assert "Installed but not loaded: pc3d-det3d (blocked)." in err
    assert (
        "which registers no components here: the plugin providing 'BEVDetector' may not be installed or enabled"
        in err
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("schedule.epochs=0", "schedule.epochs (from --set schedule.epochs=0): must be at least 1, got 0"),
        (
            "data.train.batch_size=0",
            "data.train.batch_size (from --set data.train.batch_size=0): must be at least 1",
        ),
        (
            "data.val.num_workers=-1",
            "data.val.num_workers (from --set data.val.num_workers=-1): must be at least 0",
        ),
        ("train.keep_last=0", "train.keep_last (from --set train.keep_last=0): must be at least 1, got 0"),
        (
            "train.grad_clip={max_norm: 0}",
            "train.grad_clip.max_norm (from --set train.grad_clip={max_norm: 0}): must be more than 0",
        ),
        (
            "runtime.num_threads=0",
            "runtime.num_threads (from --set runtime.num_threads=0): must be at least 1",
        ),
        ("schedule.iterations=100", "schedule: give exactly one of 'epochs' and 'iterations'"),
        (
            "data.train.dataset.max_point=5",
            "data.train.dataset.max_point (from --set data.train.dataset.max_point=5): unknown argument 'max_point' "
            "for dataset 'KittiDataset' (did you mean 'max_points'?)",
        ),
        ("data.val.dataset.pipeline=[{type: Flipp}]", "data.val.dataset.pipeline.0.type (from --set"),
        (
            "train.hooks=[{type: NoSuchHook}]",
            "train.hooks.0.type (from --set train.hooks=[{type: NoSuchHook}]): unknown train_hook",
        ),
    ],
)
def test_check_refuses_counts_out_of_range_and_bad_dataset_arguments(override, message, capsys):
    config = "pillar-center-tiny_kitti-mini-3class"
    assert main(["config", "show", config, "--check", "--set", override]) == 2
    assert message in capsys.readouterr().err
    # Without --check the config is printed as written: the checks belong to --check and the run.
    assert main(["config", "show", config, "--set", override]) == 0


def test_check_passes_every_shipped_config_that_is_not_a_base():
    from pc3d.config import list_configs
    from pc3d.plugin_manager import get_plugin_manager

    paths = [p for info in get_plugin_manager().loaded for p in list_configs(info.config_dirs)]
    checked = [p for p in paths if "_base_" not in p.parts]
    assert len(checked) >= 10
    for path in checked:
        assert main(["config", "show", str(path), "--check"]) == 0, path


@pytest.mark.parametrize(
    ("config", "name", "expected"),
    [
        ("lenet5_digits", "top_1", "(did you mean 'top1'?); its metrics give: top1, top5"),
        ("sparseunet_synthetic-lidar", "mIoU", "(did you mean 'miou'?)"),
        ("retinanet_r18-fpn_shapes", "bbox_mAP", "its metrics give: AP, AP50, AP75, APs, APm, APl"),
        ("pointpillars_hv-secfpn_kitti-3d-3class", "Car_3D_AP40", "(144 in all)"),
    ],
)
def test_check_refuses_a_best_metric_no_metric_gives(config, name, expected, capsys):
    assert main(["config", "show", config, "--check", "--set", f"train.best_metric.name={name}"]) == 2
    err = capsys.readouterr().err
    assert (
        f"train.best_metric.name: '{name}' is not a metric this config evaluates" in err and expected in err
    )
