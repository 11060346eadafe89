"""Plugin discovery, isolation of broken plugins, conflicts, selection, the registry."""

from __future__ import annotations

import sys
import types

import pytest

from pc3d import plugin_manager as plugins_module
from pc3d.config import ConfigError, build
from pc3d.plugin_api import Registrar, hookimpl
from pc3d.plugin_manager import (
    CORE_PLUGINS,
    PluginManager,
    PluginWarning,
    get_plugin_manager,
    get_registry,
    load_plugins,
)
from pc3d.registry import KINDS, PluginConflictError, PluginError, UnknownComponentError

#: The core registers its own components as plugins of the distribution "pc3d", one per module.
CORE = ["pc3d"] * len(CORE_PLUGINS)

FIRST_PARTY = {
    "pc3d-classification": {
        "backbone": ["ConvNet"],
        "head": ["LinearClsHead"],
        "model": ["ImageClassifier"],
        "dataset": ["DigitsDataset", "ImageFolderDataset"],
        "metric": ["TopKAccuracy"],
    },
    "pc3d-det2d": {
        "head": ["RetinaHead", "FCOSHead", "RPNHead", "RoIBoxHead"],
        "model": ["RetinaNet", "FCOS", "FasterRCNN"],
        "dataset": ["CocoDetection", "KittiImageDetection"],
        "transform": ["DetResize", "DetRandomFlip", "DetNormalize", "DetPad"],
        "metric": ["CocoMetric"],
    },
    "pc3d-det3d": {
        "voxel_encoder": ["DynamicPillarEncoder"],
        "backbone": ["BEVBackbone"],
        "head": ["CenterHead", "Anchor3DHead", "CenterPointHead"],
        "model": ["BEVDetector", "VoxelDetector", "VoxelNet", "CenterPoint"],
        "dataset": ["KittiDataset", "CustomLidarDataset"],
    },
    "pc3d-seg": {
        "backbone": ["PointNetEncoder"],
        "head": ["PointMLPSegHead", "FCNHead"],
        "model": ["PointSegmentor", "ImageSegmentor"],
        "dataset": ["SyntheticLidarSeg", "SemanticKittiSeg", "IndoorSeg", "ShapesSeg"],
        "transform": ["SegRotateZ", "SegScale", "SegFlip", "SegJitter", "SegPointSample", "SegCrop"],
    },
}


def by_dist(manager: PluginManager, dist: str):
    return next(p for p in manager.plugins if p.distribution == dist)


def test_first_party_plugins_come_through_entry_points():
    manager = PluginManager().load()
    loaded = {p.distribution: p for p in manager.loaded}
    missing = set(FIRST_PARTY) - set(loaded)
    assert not missing, f"first-party plugins not installed (run `make setup`): {missing}"
    for dist, registered in FIRST_PARTY.items():
        assert loaded[dist].registered == registered
        assert loaded[dist].version == "0.1.0"
        # First-party configs are the model zoo (configs/), contributed by the core.
        assert loaded[dist].config_dirs == []
    zoo = [p for p in manager.loaded if p.source == "pc3d.config.zoo"]
    assert [d.name for d in zoo[0].config_dirs] == ["configs"] and (zoo[0].config_dirs[0] / "det2d").is_dir()
    assert manager.registry.get("model", "BEVDetector").__module__ == "pc3d_det3d.detectors"


def test_entry_point_plugin_registers_by_kind(make_dist, good_plugin):
    module = make_dist("tiny-plugin", good_plugin, entry_point="tiny")
    manager = PluginManager(allow=["tiny"]).load()
    info = by_dist(manager, "tiny-plugin")
    assert (info.name, info.version, info.status, info.source) == ("tiny", "1.2.3", "loaded", module)
    assert info.registered == {"head": ["TinyHead"], "model": ["TinyModel"]}
    entry = manager.registry.entry("head", "TinyHead")
    assert entry.owner == "tiny-plugin" and entry.obj.__module__ == module
    assert manager.config_dirs()[-1:] == info.config_dirs and info.config_dirs[0].is_dir()
    # The core (pc3d's own metrics) is always loaded; the allow list selects the rest.
    assert [p.distribution for p in manager.loaded] == [*CORE, "tiny-plugin"]
    core = {p.source: p.registered for p in manager.loaded if p.distribution == "pc3d"}
    assert core == {
        "pc3d.nn.plugin": {
            "backbone": [
                "MLP",
                "LeNet5",
                "AlexNet",
                "VGG",
                "GoogLeNet",
                "ResNet",
                "SECONDBackbone",
                "SparseUNet",
                "PointNet2",
            ],
            "neck": ["FPN", "SECONDFPN"],
            "voxel_encoder": [
                "PillarFeatureNet",
                "DynamicPillarFeatureNet",
                "HardSimpleVFE",
                "DynamicSimpleVFE",
            ],
            "middle_encoder": ["PointPillarsScatter", "SparseEncoder"],
        },
        "pc3d.data.plugin": {
            "transform": [
                "PointsRangeFilter",
                "ObjectRangeFilter",
                "GlobalRotScaleTrans",
                "RandomFlip3D",
                "PointShuffle",
                "ObjectNoise",
                "ObjectSample",
            ]
        },
        "pc3d.evaluation.plugin": {"metric": ["KittiMetric", "Map3DMetric", "SegMIoUMetric"]},
        "pc3d.config.zoo": {},
    }


def test_plugin_raising_on_import_is_reported_and_skipped(make_dist, good_plugin):
    make_dist("broken-import", "raise RuntimeError('cannot find libfoo.so')\n")
    make_dist("tiny-plugin", good_plugin)
    with pytest.warns(PluginWarning, match=r"'broken-import' \(broken-import\) was skipped"):
        manager = PluginManager().load()
    broken = by_dist(manager, "broken-import")
    assert broken.status == "failed"
    assert broken.error == "import failed: RuntimeError: cannot find libfoo.so"
    assert "Traceback" in broken.error_traceback and broken.registered == {}
    # Everything else works: the fake plugin and the first-party ones.
    assert manager.registry.get("head", "TinyHead").__name__ == "TinyHead"
    assert {"pc3d-det3d", "tiny-plugin"} <= {p.distribution for p in manager.loaded}
    manager.registry.check()  # a failed plugin is no conflict


def test_plugin_raising_during_registration_leaves_nothing_behind(make_dist):
    make_dist(
        "half-done",
        """
        from pc3d.plugin_api import hookimpl

        class Half: pass

        @hookimpl
        def pc3d_register(registry):
            registry.add_head(Half)
            raise KeyError("no weights for Half")
        """,
    )
    with pytest.warns(PluginWarning, match="registration failed: KeyError"):
        manager = PluginManager(allow=["half-done"]).load()
    info = by_dist(manager, "half-done")
    assert info.status == "failed" and "no weights for Half" in info.error
    assert ("head", "Half") not in manager.registry
    assert manager.config_dirs() == [
        d for p in manager.loaded if p.distribution == "pc3d" for d in p.config_dirs
    ]


@pytest.mark.parametrize(
    ("dist", "hook", "message"),
    [
        # A misspelt hook comes with a suggestion.
        ("typo-hook", "pc3d_regster(registry)", "unknown hook pc3d_regster (did you mean 'pc3d_register'?)"),
        # The old CLI hook is no longer part of the contract: commands are entry points now.
        (
            "old-cli",
            "pc3d_add_cli_commands(subparsers)",
            "unknown hook pc3d_add_cli_commands (plugin commands are entry points of the group pc3d.commands)",
        ),
    ],
)
def test_unknown_hooks_are_reported(make_dist, dist, hook, message):
    make_dist(
        dist,
        f"""
        from pc3d.plugin_api import hookimpl

        @hookimpl
        def {hook}:
            pass
        """,
    )
    with pytest.warns(PluginWarning):
        manager = PluginManager(allow=[dist]).load()
    assert message in by_dist(manager, dist).error


def test_hook_with_wrong_arguments_is_reported(make_dist):
    make_dist(
        "bad-args",
        """
        from pc3d.plugin_api import hookimpl

        @hookimpl
        def pc3d_register(registri):
            pass
        """,
    )
    with pytest.warns(PluginWarning):
        manager = PluginManager(allow=["bad-args"]).load()
    info = by_dist(manager, "bad-args")
    assert info.status == "failed" and "registri" in info.error


def test_same_name_from_two_plugins_is_an_error_naming_both(make_dist, good_plugin):
    make_dist("first-dist", good_plugin)
    make_dist("second-dist", good_plugin)
    manager = load_plugins(allow=["first-dist", "second-dist"])
    assert [(c.kind, c.name) for c in manager.registry.conflicts] == [
        ("head", "TinyHead"),
        ("model", "TinyModel"),
    ]
    with pytest.raises(PluginConflictError) as info:
        manager.registry.get("head", "TinyHead")
    message = str(info.value)
    assert "head 'TinyHead' is registered by two plugins: first-dist" in message
    assert "and second-dist" in message and "PC3D_BLOCK_PLUGINS=second-dist" in message
    with pytest.raises(PluginConflictError, match="first-dist.*second-dist"):
        get_registry()
    with pytest.raises(PluginConflictError):
        build({"type": "TinyHead", "num_classes": 2}, kind="head")
    # Blocking one of them resolves it.
    manager = load_plugins(allow=["first-dist", "second-dist"], block=["second-dist"])
    assert get_registry().get("head", "TinyHead").__module__.startswith("fake_pc3d_plugin_")
    assert by_dist(manager, "second-dist").status == "blocked"


def test_same_name_for_different_kinds_is_fine():
    manager = PluginManager(autoload=False)

    class Shared:
        pass

    class Plugin:
        @hookimpl
        def pc3d_register(self, registry: Registrar) -> None:
            registry.add_head(Shared)
            registry.add_backbone(Shared)

    manager.register_plugin(Plugin(), "shared")
    manager.registry.check()
    assert manager.registry.get("head", "Shared") is manager.registry.get("backbone", "Shared")


def test_disable_autoload_switch(make_dist, good_plugin, monkeypatch):
    make_dist("tiny-plugin", good_plugin, entry_point="tiny")
    monkeypatch.setenv("PC3D_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = get_plugin_manager()
    assert [p.distribution for p in manager.loaded] == CORE  # the core is never disabled
    assert {p.status for p in manager.plugins if p.distribution != "pc3d"} == {"disabled"}
    assert "autoload disabled" in by_dist(manager, "pc3d-det3d").error
    with pytest.raises(UnknownComponentError, match="No installed plugin registers a model"):
        manager.registry.get("model", "BEVDetector")
    # With autoload off, the allow list still loads what it names.
    monkeypatch.setenv("PC3D_PLUGINS", "tiny")
    assert [p.distribution for p in PluginManager().load().loaded] == [*CORE, "tiny-plugin"]
    monkeypatch.setenv("PC3D_DISABLE_PLUGIN_AUTOLOAD", "0")
    monkeypatch.delenv("PC3D_PLUGINS")
    assert "pc3d-det3d" in {p.distribution for p in PluginManager().load().loaded}


def test_bad_autoload_value_is_an_error(monkeypatch):
    monkeypatch.setenv("PC3D_DISABLE_PLUGIN_AUTOLOAD", "maybe")
    with pytest.raises(PluginError, match="PC3D_DISABLE_PLUGIN_AUTOLOAD='maybe': expected 1 or 0"):
        PluginManager()


def test_allow_and_block_lists_from_env_and_api(make_dist, good_plugin, monkeypatch):
    make_dist("tiny-plugin", good_plugin, entry_point="tiny")
    # Allow by entry-point name, block by distribution name; case, '-' and '_' do not matter.
    monkeypatch.setenv("PC3D_PLUGINS", "tiny, PC3D_det3d")
    manager = PluginManager().load()
    assert sorted(p.distribution for p in manager.loaded) == [*CORE, "pc3d-det3d", "tiny-plugin"]
    assert by_dist(manager, "pc3d-seg").error == "not in the allow list (PC3D_PLUGINS)"
    monkeypatch.setenv("PC3D_BLOCK_PLUGINS", "tiny-plugin")
    manager = PluginManager().load()
    assert [p.distribution for p in manager.loaded] == [*CORE, "pc3d-det3d"]
    assert by_dist(manager, "tiny-plugin").status == "blocked"
    # The Python API overrides the environment.
    manager = PluginManager(allow=None, block=["det3d", "seg"]).load()
    assert "pc3d-det3d" not in {p.distribution for p in manager.loaded}
    manager = load_plugins(allow=["seg"], block=[])
    assert get_plugin_manager() is manager
    assert [p.distribution for p in manager.loaded] == [*CORE, "pc3d-seg"]


def test_list_naming_no_installed_plugin_warns():
    with pytest.warns(PluginWarning, match="allow list names 'no-such-plugin'"):
        PluginManager(allow=["no-such-plugin"]).load()


def test_registrar_rejects_bad_registrations():
    registrar = Registrar("p", "p-dist")
    with pytest.raises(
        PluginError, match=r"unknown component kind 'heads' \(did you mean 'head'\?\); kinds: "
    ):
        registrar.add("heads", dict)
    with pytest.raises(PluginError, match="expected a class or function"):
        registrar.add_head(42)  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="invalid name 'has space'"):
        registrar.add_head(dict, name="has space")
    registrar.add_head(dict, name="Same")
    with pytest.raises(PluginError, match="registers head 'Same' twice"):
        registrar.add_head(list, name="Same")
    for kind in KINDS:
        getattr(registrar, f"add_{kind}")(dict, name=f"{kind}_thing")
    assert {r.kind for r in registrar.pending} == set(KINDS)


def test_unknown_component_messages_suggest_names():
    manager = PluginManager(allow=["det3d"]).load()
    registry = manager.registry
    with pytest.raises(
        UnknownComponentError, match=r"unknown head 'CentreHead' \(did you mean 'CenterHead'\?\)"
    ):
        registry.get("head", "CentreHead")
    with pytest.raises(UnknownComponentError, match="'BEVBackbone' is registered as a backbone, not a head"):
        registry.get("head", "BEVBackbone")
    with pytest.raises(UnknownComponentError, match="did you mean 'CenterHead'"):
        registry.get("head", "centerhead")


def test_python_api_registers_a_plugin_object_without_an_entry_point():
    manager = PluginManager(autoload=False).load()
    plugin = types.ModuleType("inline_plugin")

    @hookimpl
    def pc3d_register(registry: Registrar) -> None:
        registry.add_metric(len, name="Length")

    plugin.pc3d_register = pc3d_register  # type: ignore[attr-defined]
    info = manager.register_plugin(plugin, "inline", distribution="my-app", version="9")
    assert info.registered == {"metric": ["Length"]}
    assert manager.registry.entry("metric", "Length").owner == "my-app"
    again = types.ModuleType("other")
    with pytest.warns(PluginWarning, match="name already used by my-app"):
        assert manager.register_plugin(again, "inline").status == "failed"


def test_core_plugins_load_even_with_autoload_disabled(tmp_path, monkeypatch):
    (tmp_path / "pc3d_fake_core_module.py").write_text(
        "from pc3d.plugin_api import hookimpl\n"
        "class CoreThing:\n    pass\n"
        "@hookimpl\ndef pc3d_register(registry):\n    registry.add_transform(CoreThing)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins_module, "CORE_PLUGINS", ("pc3d_fake_core_module",))
    manager = PluginManager(autoload=False).load()
    assert [(p.name, p.distribution) for p in manager.loaded] == [("pc3d_fake_core_module", "pc3d")]
    assert manager.registry.get("transform", "CoreThing").__name__ == "CoreThing"
    sys.modules.pop("pc3d_fake_core_module", None)


def test_plugin_commands_come_from_the_commands_entry_point_group(make_dist, capsys):
    make_dist(
        "cli-plugin",
        """
        def run(args):
            print(f"hello {args.who}")
            return 0

        def register(subparsers):
            parser = subparsers.add_parser("hello", help="say hello")
            parser.add_argument("who")
            parser.set_defaults(func=run)
        """,
        commands={"hello": "register"},
    )
    make_dist(
        "cli-clash",
        """
        def register(subparsers):
            subparsers.add_parser("plugins")  # taken by pc3d itself
        """,
        commands={"plugins": "register"},
    )
    from pc3d.cli import main

    assert main(["hello", "world"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hello world\n"
    assert "cli-clash declares the command 'plugins', a core command; ignored" in captured.err
    manager = load_plugins(allow=["cli-plugin", "cli-clash"])
    assert by_dist(manager, "cli-plugin").commands == ["hello"]
    assert by_dist(manager, "cli-clash").commands == ["plugins"]  # declared (and ignored by the CLI)


def test_config_build_uses_the_loaded_plugins(make_dist, good_plugin):
    make_dist("tiny-plugin", good_plugin)
    load_plugins(allow=["tiny-plugin"])
    model = build({"type": "TinyModel", "head": {"type": "TinyHead", "num_classes": 3}}, kind="model")
    assert model.head.num_classes == 3
    with pytest.raises(
        ConfigError, match=r"head\.type .*unknown head 'TinyHaed' \(did you mean 'TinyHead'\?\)"
    ):
        build({"type": "TinyModel", "head": {"type": "TinyHaed", "num_classes": 3}}, kind="model")
