"""A written (resolved) config records which plugin provided each component type
(``_plugins_``), and building a config whose plugin is missing names that plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pc3d.config import PLUGINS_KEY, Config, ConfigError, build, dump_config, load_config
from pc3d.config.dumping import component_plugins
from pc3d.engine.schema import parse_run_spec
from pc3d.plugin_api import Registrar, hookimpl
from pc3d.plugin_manager import PluginManager
from pc3d.registry import Registry


class Backbone:
    def __init__(self, width: int = 4):
        self.width = width


class Detector:
    def __init__(self, backbone: Backbone):
        self.backbone = backbone


class _Detectors:
    @hookimpl
    def pc3d_register(self, registry: Registrar) -> None:
        registry.add("model", Detector, "Detector")
        registry.add("backbone", Backbone, "Backbone")


class _Core:
    @hookimpl
    def pc3d_register(self, registry: Registrar) -> None:
        registry.add("backbone", Backbone, "CoreBackbone")


class _Renamed:
    @hookimpl
    def pc3d_register(self, registry: Registrar) -> None:
        registry.add("model", Detector, "DetectorV2")
        registry.add("backbone", Backbone, "Backbone")


def _registry(*plugins: tuple[object, str, str | None]) -> Registry:
    manager = PluginManager(autoload=False, allow=(), block=())
    for plugin, name, distribution in plugins:
        manager.register_plugin(plugin, name, distribution=distribution)
    return manager.registry


WITH_DETECTORS = (_Detectors(), "detectors", "pc3d-gone-detectors")
CONFIG = {
    "model": {"type": "Detector", "backbone": {"type": "Backbone", "width": 8}},
    "metrics": [{"type": "CoreBackbone"}, {"type": "Unknown"}],
    "schedule": {"epochs": 1},
}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    registry = _registry(WITH_DETECTORS, (_Core(), "core", "pc3d"))
    return dump_config(Config(CONFIG, path=tmp_path / "source.yaml"), tmp_path / "work", registry=registry)


def test_the_written_config_names_the_plugin_of_each_component_type(written: Path):
    text = written.read_text()
    data = yaml.safe_load(text)
    # pc3d's own types and types nothing registers are not recorded; the map comes last.
    assert data[PLUGINS_KEY] == {"Detector": "pc3d-gone-detectors", "Backbone": "pc3d-gone-detectors"}
    assert list(data)[-1] == PLUGINS_KEY
    assert f"# {PLUGINS_KEY}: the plugin (pip distribution) each component type comes from." in text
    loaded = load_config(written)
    assert {k: v for k, v in loaded.data.items() if k != PLUGINS_KEY} == CONFIG
    parse_run_spec(loaded)  # the engine's schema accepts the key


def test_a_missing_plugin_is_named_with_how_to_install_it(written: Path):
    config = load_config(written)
    with pytest.raises(ConfigError) as caught:
        build(config.node("model"), "model", registry=_registry())
    message = str(caught.value)
    assert f"model.type (from {written}:" in message
    assert "unknown model 'Detector'" in message
    assert (
        "Detector comes from the plugin pc3d-gone-detectors, which is not installed "
        "(pip install pc3d-gone-detectors)." in message
    )
    assert "Loaded plugins: none." in message


def test_a_nested_component_of_a_missing_plugin_is_named_too(written: Path):
    config = load_config(written)
    registry = _registry((_Renamed(), "renamed", "pc3d-renamed"))
    registry._entries["backbone"].pop("Backbone")  # only the model's plugin is there
    registry._entries["model"]["Detector"] = registry._entries["model"].pop("DetectorV2")
    with pytest.raises(
        ConfigError,
        match=r"model\.backbone\.type .*Backbone comes from the plugin pc3d-gone-detectors, which is not installed \(pip install pc3d-gone-detectors\)",
    ):
        build(config.node("model"), "model", registry=registry)


def test_an_installed_plugin_that_dropped_the_type_says_so(written: Path):
    config = load_config(written)
    registry = _registry((_Renamed(), "detectors", "pc3d-gone-detectors"))
    with pytest.raises(ConfigError) as caught:
        build(config.node("model"), "model", registry=registry)
    message = str(caught.value)
    assert (
        "Detector comes from the plugin pc3d-gone-detectors, but the installed pc3d-gone-detectors" in message
    )
    assert "does not register it (renamed or removed since the config was written?)" in message
    assert "did you mean 'DetectorV2'" in message


def test_a_type_registered_as_another_kind_is_not_blamed_on_the_plugin(written: Path):
    config = load_config(written)
    with pytest.raises(ConfigError) as caught:
        build(config.node("model.backbone"), "model", registry=_registry(WITH_DETECTORS))
    message = str(caught.value)
    assert "'Backbone' is registered as a backbone, not a model" in message
    assert "comes from the plugin" not in message


@pytest.mark.parametrize(
    "recorded",
    [
        "[Detector, pc3d-x]",
        "{Detector: 3}",
        "{Detector: 'pc3d x; rm -rf /'}",
        "{Detector: ''}",
        "not a mapping",
        "null",
    ],
)
def test_an_unusable_record_is_ignored(tmp_path: Path, recorded: str):
    path = tmp_path / "c.yaml"
    path.write_text(f"model: {{type: Detector}}\n{PLUGINS_KEY}: {recorded}\n")
    config = load_config(path)
    parse_run_spec(config)
    with pytest.raises(ConfigError) as caught:
        build(config.node("model"), "model", registry=_registry())
    message = str(caught.value)
    assert "unknown model 'Detector'" in message and "comes from the plugin" not in message
    assert component_plugins(config.data, _registry()) == {}


def test_rewriting_a_written_config_keeps_what_it_recorded(written: Path, tmp_path: Path):
    config = load_config(written, ["model.backbone.width=2"])
    again = dump_config(config, tmp_path / "again", registry=_registry((_Core(), "core", "pc3d")))
    assert yaml.safe_load(again.read_text())[PLUGINS_KEY] == {
        "Detector": "pc3d-gone-detectors",
        "Backbone": "pc3d-gone-detectors",
    }
    # A type the config no longer names is dropped; one a loaded plugin provides is looked up.
    config = load_config(written, ["model.backbone.type=CoreBackbone"])
    moved = dump_config(
        config, tmp_path / "moved", registry=_registry((_Renamed(), "renamed", "pc3d-renamed"))
    )
    assert yaml.safe_load(moved.read_text())[PLUGINS_KEY] == {"Detector": "pc3d-gone-detectors"}


def test_a_config_without_plugin_components_writes_no_record(tmp_path: Path):
    written = dump_config(Config({"model": {"type": "CoreBackbone"}, "a": 1}), tmp_path, registry=_registry())
    assert PLUGINS_KEY not in written.read_text()


@pytest.mark.usefixtures("fresh_plugins")
def test_a_blocked_plugin_of_a_written_config_is_named(tmp_path: Path, monkeypatch, capsys):
    from pc3d.cli import main

    pytest.importorskip("pc3d_det3d")
    written = dump_config(load_config("pillar-center-tiny_kitti-3class"), tmp_path / "work")
    recorded = yaml.safe_load(written.read_text())[PLUGINS_KEY]
    assert recorded["BEVDetector"] == "pc3d-det3d"

    from pc3d.plugin_manager import reset_plugin_manager

    reset_plugin_manager()
    monkeypatch.setenv("PC3D_BLOCK_PLUGINS", "det3d")
    assert main(["config", "show", str(written), "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "BEVDetector comes from the plugin pc3d-det3d, which is installed but not loaded (blocked by the block list"
        in err
    )

    # The same file where the plugin is not installed at all.
    text = written.read_text().replace("BEVDetector: pc3d-det3d", "BEVDetector: pc3d-det3d-uninstalled")
    written.write_text(text)
    assert main(["config", "show", str(written), "--check"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "BEVDetector comes from the plugin pc3d-det3d-uninstalled, which is not installed "
        "(pip install pc3d-det3d-uninstalled)." in err
    )
