"""Config files: _base_ inheritance, merge semantics, _replace_, --set overrides, provenance,
errors naming file and line, dumping the resolved config."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from pc3d.config import (
    Config,
    ConfigError,
    apply_overrides,
    dump_config,
    find_config,
    list_configs,
    load_config,
    merge,
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(path: Path, *overrides: str, dirs: tuple[Path, ...] = ()) -> Config:
    return load_config(path, overrides, search_dirs=list(dirs))


# -- merge semantics -----------------------------------------------------------------------------


def test_mappings_merge_deeply_and_everything_else_replaces():
    base = {
        "model": {"backbone": {"channels": [32, 64], "strides": [2, 2]}, "head": {"n": 3}},
        "train": {"lr": 0.01, "schedule": {"steps": [8, 11]}},
        "tags": ["a", "b"],
        "note": {"x": 1},
    }
    override = {
        "model": {"backbone": {"channels": [16]}, "head": {"extra": True}},
        "train": {"schedule": None},
        "tags": ["c"],
        "note": "flat now",
        "new": {"k": 1},
    }
    merged = merge(base, override)
    assert merged == {
        "model": {"backbone": {"channels": [16], "strides": [2, 2]}, "head": {"n": 3, "extra": True}},
        "train": {"lr": 0.01, "schedule": None},
        "tags": ["c"],
        "note": "flat now",
        "new": {"k": 1},
    }
    assert list(merged) == ["model", "train", "tags", "note", "new"]  # base order, then new keys
    assert base["model"]["backbone"]["channels"] == [32, 64]  # inputs untouched
    assert merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}  # a mapping replaces a scalar


def test_replace_swaps_a_whole_mapping():
    base = {"model": {"head": {"type": "CenterHead", "head_channels": 64, "num_classes": 3}}}
    replaced = merge(base, {"model": {"head": {"_replace_": True, "type": "Other", "num_classes": 3}}})
    assert replaced == {"model": {"head": {"type": "Other", "num_classes": 3}}}
    merged = merge(base, {"model": {"head": {"_replace_": False, "num_classes": 5}}})
    assert merged["model"]["head"] == {"type": "CenterHead", "head_channels": 64, "num_classes": 5}
    # _replace_ is removed even where there is nothing to replace.
    assert merge({}, {"a": {"_replace_": True, "b": {"_replace_": True, "c": 1}}}) == {"a": {"b": {"c": 1}}}


# -- files and _base_ ----------------------------------------------------------------------------


def test_base_chain_relative_paths_and_sources(tmp_path):
    write(
        tmp_path,
        "_bases/model.yaml",
        """
        model:
          type: Det
          head:
            num_classes: 3
            width: 64
        train: {lr: 0.01, epochs: 10}
    """,
    )
    write(
        tmp_path,
        "_bases/schedule.yaml",
        """
        train:
          epochs: 20
          warmup: 100
    """,
    )
    child = write(
        tmp_path,
        "det_kitti-3class.yaml",
        """
        _base_: [_bases/model.yaml, _bases/schedule.yaml]
        model:
          head:
            width: 32
    """,
    )
    config = load(child)
    assert config.data == {
        "model": {"type": "Det", "head": {"num_classes": 3, "width": 32}},
        "train": {"lr": 0.01, "epochs": 20, "warmup": 100},
    }
    assert config.origin("model.head.width") == f"{child}:4"
    assert config.origin("model.head.num_classes") == f"{tmp_path / '_bases/model.yaml'}:4"
    assert config.origin("train.epochs") == f"{tmp_path / '_bases/schedule.yaml'}:2"
    assert config.origin("train.lr") == f"{tmp_path / '_bases/model.yaml'}:6"
    assert config["model.head.width"] == 32 and "model.head" in config and "model.nope" not in config


def test_single_string_base_and_diamond(tmp_path):
    write(tmp_path, "root.yaml", "a: 1\nb: 1\n")
    write(tmp_path, "left.yaml", "_base_: root.yaml\nb: 2\n")
    write(tmp_path, "right.yaml", "_base_: root.yaml\nc: 3\n")
    top = write(tmp_path, "top.yaml", "_base_: [left.yaml, right.yaml]\n")
    # right re-merges root after left: a later base wins, including its own bases.
    assert load(top).data == {"a": 1, "b": 1, "c": 3}


def test_base_found_in_plugin_config_dirs(tmp_path):
    shipped = tmp_path / "plugin_configs"
    write(shipped, "shipped_model.yaml", "model: {type: Det, width: 8}\n")
    mine = write(tmp_path / "work", "mine.yaml", "_base_: shipped_model.yaml\nmodel: {width: 4}\n")
    assert load(mine, dirs=(shipped,)).data == {"model": {"type": "Det", "width": 4}}
    # Bare names (with or without suffix) are found the same way.
    assert find_config("shipped_model", [shipped]) == shipped / "shipped_model.yaml"
    assert list_configs([shipped]) == [shipped / "shipped_model.yaml"]


def test_missing_base_names_the_including_file_and_line(tmp_path):
    child = write(tmp_path, "child.yaml", "# comment\n_base_: [nope.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load(child, dirs=(tmp_path / "elsewhere",))
    message = str(info.value)
    assert message.startswith(f"{child}:2: _base_ 'nope.yaml' not found")
    assert "elsewhere" in message


def test_missing_config_suggests_a_close_name(tmp_path):
    write(tmp_path, "pointpillars_kitti-3class.yaml", "a: 1\n")
    with pytest.raises(ConfigError, match=r"\(did you mean 'pointpillars_kitti-3class.yaml'\?\)"):
        find_config("pointpillar_kitti-3class.yaml", [tmp_path])


def test_base_cycle_is_detected(tmp_path):
    a = write(tmp_path, "a.yaml", "_base_: b.yaml\nx: 1\n")
    write(tmp_path, "b.yaml", "_base_: c.yaml\n")
    write(tmp_path, "c.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_base_ cycle: .*a\.yaml -> .*b\.yaml -> .*c\.yaml -> .*a\.yaml"):
        load(a)
    selfish = write(tmp_path, "self.yaml", "_base_: self.yaml\n")
    with pytest.raises(ConfigError, match="_base_ cycle"):
        load(selfish)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        # Bad YAML names the file, line and column.
        ("bad.yaml", "model:\n  type: Det\n  head: [1, 2\ntrain: {}\n", r"^{path}:4:\d+: invalid YAML"),
        ("tabs.yaml", "a:\n\tb: 1\n", r"^{path}:2:1: invalid YAML"),
        # Duplicate keys and files that are not a mapping are rejected.
        (
            "dup.yaml",
            "model:\n  width: 1\n  depth: 2\n  width: 3\n",
            r"^{path}:4: duplicate key 'model.width' \(first on line 2\)",
        ),
        ("list.yaml", "- a\n- b\n", "must be a mapping at top level, got a list"),
    ],
)
def test_malformed_files_are_rejected_naming_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=message.replace("{path}", re.escape(str(path)))):
        load(path)
    assert load(write(tmp_path, "empty.yaml", "# nothing\n")).data == {}


def test_yaml_is_data_never_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = write(tmp_path, "evil.yaml", f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=rf"^{evil}:1:\d+: invalid YAML"):
        load(evil)
    assert not marker.exists()


# Same write-then-expect-the-message shape as the reference tests on purpose: each case names its own error.
def test_reserved_keys_are_checked(tmp_path):
    nested = write(tmp_path, "nested.yaml", "model:\n  _base_: other.yaml\n")
    with pytest.raises(
        ConfigError, match=rf"model._base_ \(from {nested}:2\): _base_ is only allowed at top level"
    ):
        load(nested)
    flag = write(tmp_path, "flag.yaml", "model:\n  _replace_: yes please\n")
    with pytest.raises(ConfigError, match="_replace_ must be true or false, got 'yes please'"):
        load(flag)
    base_type = write(tmp_path, "base_type.yaml", "_base_: {a: 1}\n")
    with pytest.raises(ConfigError, match="_base_ must be a file name or a list of them"):
        load(base_type)


def test_replace_in_a_file_and_its_sources(tmp_path):
    write(tmp_path, "base.yaml", "head:\n  type: A\n  width: 64\n  depth: 2\n")
    child = write(tmp_path, "child.yaml", "_base_: base.yaml\nhead:\n  _replace_: true\n  type: B\n")
    config = load(child)
    assert config.data == {"head": {"type": "B"}}
    assert ("head", "width") not in config.sources and ("head", "_replace_") not in config.sources
    assert config.origin("head.type") == f"{child}:4"


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_are_typed_as_yaml(tmp_path):
    path = write(tmp_path, "c.yaml", "model:\n  head: {num_classes: 3, name: x}\ntrain: {lr: 0.01}\n")
    config = load(
        path,
        "model.head.num_classes=5",
        "train.lr=0.002",
        "train.amp=true",
        "model.head.name='3'",
        "model.head.strides=[1, 2]",
        "model.head.extra=null",
        "model.neck={type: FPN, levels: 3}",
        "new.deep.key=on",
        "train.note=hello world",
    )
    assert config["model.head"] == {
        "num_classes": 5,
        "name": "3",
        "strides": [1, 2],
        "extra": None,
    }
    assert config["train"] == {"lr": 0.002, "amp": True, "note": "hello world"}
    assert config["model.neck"] == {"type": "FPN", "levels": 3}
    assert config["new.deep.key"] is True
    assert config.origin("model.head.num_classes") == "--set model.head.num_classes=5"
    assert config.origin("model.neck.levels") == "--set model.neck={type: FPN, levels: 3}"
    assert config.overrides[0] == "model.head.num_classes=5"


def test_overrides_index_lists_and_report_bad_paths(tmp_path):
    path = write(tmp_path, "c.yaml", "pipeline:\n  - {type: Load}\n  - {type: Flip, p: 0.5}\nlr: 0.1\n")
    config = load(path, "pipeline.1.p=0.25", "pipeline.-1.type=Mirror")
    assert config["pipeline"] == [{"type": "Load"}, {"type": "Mirror", "p": 0.25}]
    with pytest.raises(
        ConfigError, match=r"--set pipeline.5.p=1: pipeline.5: index 5 out of range \(list of 2\)"
    ):
        load(path, "pipeline.5.p=1")
    with pytest.raises(ConfigError, match="'first' indexes a list, so it must be an integer"):
        load(path, "pipeline.first.p=1")
    with pytest.raises(ConfigError, match=rf"cannot set lr.value: lr is a float \(from {path}:4\)"):
        load(path, "lr.value=1")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load(path, "lr")
    with pytest.raises(ConfigError, match="_base_ cannot be overridden"):
        load(path, "_base_=other.yaml")
    with pytest.raises(ConfigError, match=r"--set lr=\[1, 2: the value is not valid YAML: ") as error:
        load(path, "lr=[1, 2")
    assert "\n" not in str(error.value)  # one line
    with pytest.raises(ConfigError, match="empty part between dots"):
        load(path, "model..head=1")


def test_override_replaces_a_mapping_and_its_sources(tmp_path):
    path = write(tmp_path, "c.yaml", "head: {type: A, width: 4}\n")
    config = apply_overrides(load(path), ["head={type: B}"])
    assert config.data == {"head": {"type": "B"}}
    assert ("head", "width") not in config.sources


def test_missing_key_lookup_suggests(tmp_path):
    config = load(write(tmp_path, "c.yaml", "model:\n  head: {num_classes: 3}\n"))
    with pytest.raises(
        ConfigError, match=r"no key 'model.head.num_class' \(did you mean 'model.head.num_classes'\?\)"
    ):
        config["model.head.num_class"]
    assert config.get("model.head.num_class", 7) == 7


# -- writing -------------------------------------------------------------------------------------


def test_dump_config_writes_a_self_contained_resolved_copy(tmp_path):
    write(tmp_path, "base.yaml", "model:\n  size: [0.2, 0.2]\n  head: {n: 3}\nname: café\n")
    path = write(tmp_path, "child.yaml", "_base_: base.yaml\nmodel:\n  head: {n: 4}\n")
    config = load(path, "train.lr=0.002")
    work_dir = tmp_path / "work_dirs" / "run1"
    written = dump_config(config, work_dir)
    assert written == work_dir / "config.yaml"
    text = written.read_text()
    assert text.startswith("# Resolved pc3d config")
    assert f"# from: {path}" in text and "# --set train.lr=0.002" in text
    assert "size: [0.2, 0.2]" in text  # short scalar lists stay on one line
    assert "_base_" not in text
    assert yaml.safe_load(text) == config.data
    assert load(written).data == config.data
    assert sorted(p.name for p in work_dir.iterdir()) == ["config.yaml"]  # no temp file left
    dump_config(load(path), work_dir)  # overwrites in place
    assert "train" not in yaml.safe_load(written.read_text())


def test_aliases_are_independent_after_loading(tmp_path):
    path = write(tmp_path, "c.yaml", "shared: &r [0, 1]\na: {range: *r}\nb: {range: *r}\n")
    config = load(path, "a.range.0=5")
    assert config["a.range"] == [5, 1] and config["b.range"] == [0, 1]


def test_exponent_floats_without_a_decimal_point_are_numbers(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 as a string; configs and --set take it as Python does.
    path = write(
        tmp_path, "opt.yaml", "optimizer: {lr: 1e-3, weight_decay: 5E-4, name: e5}\nsteps: [1e3, 2]\n"
    )
    cfg = load(path, "optimizer.eps=1e-8", "optimizer.label=1e")
    assert cfg.get("optimizer.lr") == 0.001 and cfg.get("optimizer.weight_decay") == 0.0005
    assert cfg.get("optimizer.eps") == 1e-8 and cfg.get("steps") == [1000.0, 2]
    assert cfg.get("optimizer.name") == "e5" and cfg.get("optimizer.label") == "1e"  # not numbers
    assert yaml.safe_load("1e-3") == "1e-3"  # PyYAML's own loader is left as it is
