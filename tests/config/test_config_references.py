"""${...} references: typed whole values, text interpolation, resolved after _base_ and --set,
errors for missing and circular references naming the key, file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from pc3d.config import Config, ConfigError, apply_overrides, dump_config, load_config


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(path: Path, *overrides: str) -> Config:
    return load_config(path, overrides, search_dirs=[])


RANGES = """
    class_names: [Car, Pedestrian]
    model:
      voxel: {size: [0.2, 0.2, 4], range: [0, -40, -3, 70.4, 40, 1]}
      backbone: {channels: [32, 64, 128]}
      head:
        in_channels: ${model.backbone.channels.-1}
        first: ${model.backbone.channels.0}
        names: ${class_names}
    data:
      classes: ${class_names}
      range: ${model.voxel.range}
      voxel: ${model.voxel}
      tag: run_${model.backbone.channels.1}_${class_names.0}_${data.flag}_${data.nothing}_${data.ratio}
      flag: true
      nothing: null
      ratio: 0.5
"""


def test_a_whole_value_reference_keeps_the_type_and_text_interpolates(tmp_path):
    config = load(write(tmp_path, "c.yaml", RANGES))
    assert config["model.head"] == {"in_channels": 128, "first": 32, "names": ["Car", "Pedestrian"]}
    assert config["data.classes"] == ["Car", "Pedestrian"]
    assert config["data.range"] == [0, -40, -3, 70.4, 40, 1]
    assert config["data.voxel"] == {"size": [0.2, 0.2, 4], "range": [0, -40, -3, 70.4, 40, 1]}
    assert config["data.tag"] == "run_64_Car_true_null_0.5"
    # Each use is its own copy: changing one leaves the others alone.
    config["data.classes"].append("Cyclist")
    assert config["class_names"] == ["Car", "Pedestrian"] and config["model.head.names"] == [
        "Car",
        "Pedestrian",
    ]


def test_references_follow_base_merging_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", RANGES)
    child = write(
        tmp_path,
        "child.yaml",
        "_base_: base.yaml\nclass_names: [Car]\nmodel:\n  backbone: {channels: [16, 32]}\n",
    )
    config = load(child, "model.voxel.range=[0, -20, -3, 40, 20, 1]")
    assert config["data.classes"] == ["Car"] and config["model.head.names"] == ["Car"]
    assert config["model.head.in_channels"] == 32 and config["data.tag"] == "run_32_Car_true_null_0.5"
    assert config["data.range"] == [0, -20, -3, 40, 20, 1]
    # A reference given on the command line is resolved too, and a literal replaces a reference.
    config = load(child, "model.head.in_channels=7", "extra=${model.voxel.size}")
    assert config["model.head.in_channels"] == 7 and config["extra"] == [0.2, 0.2, 4]
    # apply_overrides on a loaded config re-resolves from the unresolved data.
    apply_overrides(config, ["class_names=[Tram]"])
    assert config["data.classes"] == ["Tram"] and config["model.head.in_channels"] == 7


def test_a_reference_through_another_reference(tmp_path):
    config = load(
        write(tmp_path, "c.yaml", "a: {b: [1, 2, 3]}\nalias: ${a}\nlast: ${alias.b.-1}\nname: x${last}\n")
    )
    assert config["last"] == 3 and config["name"] == "x3"


def test_a_missing_reference_names_the_key_file_line_and_suggests(tmp_path):
    path = write(tmp_path, "c.yaml", RANGES.replace("classes: ${class_names}", "classes: ${class_nmes}"))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == (
        f"data.classes (from {path}:10): reference ${{class_nmes}} not found: config has no key "
        "'class_nmes' (did you mean 'class_names'?)"
    )
    with pytest.raises(
        ConfigError,
        match=r"^model.head.first \(from .*c.yaml:7\): reference \$\{model.backbone.channels.5\} not found: model.backbone.channels is a list of 3, '5' is not an index in it",
    ):
        load(write(tmp_path, "c.yaml", RANGES.replace("channels.0}", "channels.5}")))
    with pytest.raises(
        ConfigError,
        match=r"^x \(from --set x=\$\{class_names.name\}\): reference \$\{class_names.name\} not found: class_names is a list of 2, 'name' is not an index in it$",
    ):
        load(write(tmp_path, "c.yaml", RANGES), "x=${class_names.name}")
    with pytest.raises(
        ConfigError,
        match=r"reference \$\{data.flag.deeper\} not found: data.flag is bool True, not a mapping or a list",
    ):
        load(write(tmp_path, "c.yaml", RANGES), "x=${data.flag.deeper}")


def test_circular_references_are_errors_naming_the_chain(tmp_path):
    path = write(
        tmp_path, "c.yaml", "a: ${b}\nb: [1, '${c}']  # quoted: { is special inside [...]\nc: ${a}\n"
    )
    with pytest.raises(
        ConfigError, match=rf"^c \(from {path}:3\): circular reference: a -> b -> b.1 -> c -> a$"
    ):
        load(path)
    nested = write(tmp_path, "n.yaml", "model:\n  head:\n    copy: ${model}\n")
    with pytest.raises(
        ConfigError,
        match=rf"^model.head.copy \(from {nested}:3\): circular reference: model -> model.head -> model.head.copy -> model$",
    ):
        load(nested)
    selfish = write(tmp_path, "s.yaml", "a: x${a}\n")
    with pytest.raises(ConfigError, match="circular reference: a -> a"):
        load(selfish)


def test_malformed_references_and_lists_in_text_are_errors(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^a \(from .*:1\): \$\{b\} is a list, which cannot be part of a text"
    ):
        load(write(tmp_path, "c.yaml", "a: x ${b}\nb: [1]\n"))
    with pytest.raises(ConfigError, match=r"reference '\$\{b' has no closing '\}'"):
        load(write(tmp_path, "c.yaml", "a: ${b\nb: 1\n"))
    with pytest.raises(ConfigError, match=r"invalid reference '\$\{b..c\}'"):
        load(write(tmp_path, "c.yaml", "a: ${b..c}\nb: 1\n"))


def test_setting_below_a_reference_to_a_scalar_says_what_to_set(tmp_path):
    path = write(tmp_path, "c.yaml", RANGES)
    with pytest.raises(
        ConfigError,
        match=r"cannot set model.head.first.x: model.head.first is the reference \$\{model.backbone.channels.0\} "
        r"\(set the key it refers to, or model.head.first as a whole\)",
    ):
        load(path, "model.head.first.x=5")


def test_setting_below_a_reference_to_a_list_or_mapping_sets_it_in_a_copy(tmp_path):
    path = write(tmp_path, "c.yaml", RANGES)
    config = load(path, "data.range.0=5", "data.voxel.size.-1=8", "model.voxel.range.1=-50")
    assert config.data["data"]["range"] == [5, -40, -3, 70.4, 40, 1]  # the copy was taken at data.range.0=5
    # data.voxel became a copy before model.voxel.range changed: the copy keeps the old range.
    assert config.data["data"]["voxel"] == {"size": [0.2, 0.2, 8], "range": [0, -40, -3, 70.4, 40, 1]}
    assert config.data["model"]["voxel"] == {"size": [0.2, 0.2, 4], "range": [0, -50, -3, 70.4, 40, 1]}
    assert config.origin("data.range.0") == "--set data.range.0=5"
    assert config.origin("data.voxel.range") == f"{path}:3"  # copied keys keep their origin


SPLITS = """
    class_names: [Car]
    data:
      val:
        dataset: {type: Kitti, split: val, classes: "${class_names}"}
        batch_size: 1
      test: ${data.val}
"""


def test_a_test_split_written_as_the_val_one_is_settable_key_by_key(tmp_path):
    base = write(tmp_path, "base.yaml", SPLITS)
    config = load(base, "data.test.batch_size=16", "class_names=[Van]")
    assert config.data["data"]["test"] == {
        "dataset": {"type": "Kitti", "split": "val", "classes": ["Van"]},  # references inside kept
        "batch_size": 16,
    }
    assert config.data["data"]["val"]["batch_size"] == 1
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\ndata:\n  test:\n    dataset: {split: test}\n")
    merged = load(child).data["data"]["test"]
    assert merged == {"dataset": {"type": "Kitti", "split": "test", "classes": ["Car"]}, "batch_size": 1}
    sources = load(child).sources
    assert sources[("data", "test", "dataset", "split")] == f"{child}:4"
    assert sources[("data", "test", "dataset", "type")] == f"{base}:4"
    replaced = write(
        tmp_path, "replaced.yaml", "_base_: base.yaml\ndata:\n  test: {_replace_: true, batch_size: 2}\n"
    )
    assert load(replaced).data["data"]["test"] == {"batch_size": 2}  # _replace_ still replaces


def test_escaped_references_stay_text_and_survive_dumping(tmp_path):
    config = load(write(tmp_path, "c.yaml", "a: 1\ntext: 'cost $${a} and ${a}'\nplain: $$a\n"))
    assert config["text"] == "cost ${a} and 1" and config["plain"] == "$$a"
    written = dump_config(config, tmp_path / "work")
    assert "$${a}" in written.read_text()
    assert load(written).data == config.data  # the dumped file loads back to the same data
    assert config.origin("text") == f"{tmp_path / 'c.yaml'}:2"


def test_shipped_det3d_config_writes_each_value_once():
    config = load_config("pillar-center-tiny_kitti-mini-3class")
    names = config["class_names"]
    assert config["data.train.dataset.class_names"] == config["data.val.dataset.class_names"] == names
    assert config["metrics.0.classes"] == names
    point_range = config["model.voxel_encoder.point_cloud_range"]
    assert (
        config["data.train.dataset.point_cloud_range"]
        == config["data.val.dataset.point_cloud_range"]
        == point_range
    )
    assert not [key for key in config.data if key.startswith("_")]  # no anchor keys in the output
    resolved = yaml.safe_load(config.to_yaml())
    assert "${" not in config.to_yaml() and resolved == config.data
    changed = load_config(
        "pillar-center-tiny_kitti-mini-3class", ["class_names=[Car]", "model.backbone.channels=[16, 48]"]
    )
    assert changed["metrics.0.classes"] == ["Car"] and changed["model.head.in_channels"] == 48
