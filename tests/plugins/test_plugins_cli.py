"""`pc3d plugins`: what is installed, its version, what each plugin registers; failures shown."""

from __future__ import annotations

import json

from pc3d.cli import main
from pc3d.plugin_manager import CORE_PLUGINS


def test_lists_first_party_plugins_by_kind(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "pc3d-det3d 0.1.0  [det3d = pc3d_det3d.plugin]" in out
    det3d = out.split("pc3d-det3d 0.1.0")[1].split("\npc3d-")[0]
    assert "  voxel_encoder: DynamicPillarEncoder\n" in det3d
    assert (
        "  head: CenterHead, Anchor3DHead, CenterPointHead\n" in det3d
        and "  model: BEVDetector, VoxelDetector, VoxelNet, CenterPoint\n" in det3d
    )
    assert "  configs: " not in det3d  # first-party configs are the core's model zoo
    for dist in ("pc3d-classification", "pc3d-det2d", "pc3d-seg"):
        assert f"{dist} 0.1.0" in out


def test_failed_plugin_is_listed_with_its_error_and_exit_status_1(make_dist, good_plugin, capsys):
    make_dist("broken-plugin", "import numpy\nnumpy.this_does_not_exist\n", version="0.0.1")
    make_dist("tiny-plugin", good_plugin)
    status = main(["plugins"])
    assert status == 1
    out, err = capsys.readouterr()
    # The CLI prints the plugin's warning as one line instead of a Python warning.
    assert "pc3d plugins: warning: pc3d plugin 'broken-plugin' (broken-plugin) was skipped" in err
    assert "broken-plugin 0.0.1" in out and "FAILED" in out
    assert "  error: import failed: AttributeError: module 'numpy' has no attribute" in out
    assert "tiny-plugin 1.2.3" in out and "  head: TinyHead" in out


def test_verbose_shows_the_traceback(make_dist, capsys):
    make_dist("broken-plugin", "raise ImportError('libcuda.so.1 missing')\n")
    main(["plugins", "-v"])
    out, err = capsys.readouterr()
    assert "warning: pc3d plugin 'broken-plugin'" in err
    assert "Traceback (most recent call last)" in out and "libcuda.so.1 missing" in out


def test_json_output_and_conflicts(make_dist, good_plugin, capsys, monkeypatch):
    make_dist("first-dist", good_plugin)
    make_dist("second-dist", good_plugin)
    monkeypatch.setenv("PC3D_PLUGINS", "first-dist,second-dist")
    assert main(["plugins", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    # pc3d's own core plugin (its metrics) is always loaded, whatever the selection.
    assert [p["distribution"] for p in payload["plugins"] if p["status"] == "loaded"] == [
        *["pc3d"] * len(CORE_PLUGINS),
        "first-dist",
        "second-dist",
    ]
    assert len(payload["conflicts"]) == 2
    assert "head 'TinyHead' is registered by two plugins: first-dist" in payload["conflicts"][0]
    assert main(["plugins"]) == 1
    assert "CONFLICT: head 'TinyHead'" in capsys.readouterr().out


def test_disabled_and_blocked_plugins_are_listed_with_the_reason(monkeypatch, capsys):
    monkeypatch.setenv("PC3D_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PC3D_BLOCK_PLUGINS", "seg")
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "pc3d-det3d 0.1.0  [det3d = pc3d_det3d.plugin]  DISABLED" in out
    assert "autoload disabled (PC3D_DISABLE_PLUGIN_AUTOLOAD)" in out
    assert "pc3d-seg 0.1.0  [seg = pc3d_seg.plugin]  BLOCKED" in out
