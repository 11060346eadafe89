"""The PointPillars and SECOND zoo configs build, and MMDetection3D checkpoints load through the engine.

No reference files needed: random weights written in MMDetection3D's checkpoint layout stand in for
a user's checkpoint (`test_mmdet3d_reference.py` compares against MMDetection3D's own outputs).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

import pc3d.inference
from pc3d.cli import main
from pc3d.config import load_config
from pc3d.engine.checkpoint import model_state_from

REPO = Path(__file__).resolve().parents[3]
ZOO = [p for folder in ("pointpillars", "second") for p in sorted((REPO / "configs" / folder).glob("*.yaml"))]


def test_the_zoo_has_both_models() -> None:
    assert {p.stem for p in ZOO} >= {
        "pointpillars_hv-secfpn_kitti-3d-3class",
        "second_hv-secfpn_kitti-3d-3class",
    }


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.stem)
def test_every_zoo_config_builds_its_model(path: Path) -> None:
    if "second" in path.stem:
        pytest.importorskip(
            "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
        )
    assert main(["config", "show", str(path), "--check"]) == 0
    config = load_config(path)
    model = pc3d.inference.load_model(config)
    assert model.class_names == config.data["class_names"]
    # Values written once: the voxel layer and the voxel encoder share them.
    assert list(model.voxel.point_cloud_range) == config.data["point_cloud_range"]
    assert list(model.voxel.voxel_size) == config.data["voxel_size"]


@pytest.mark.parametrize(
    "name", ["pointpillars_hv-secfpn_kitti-3d-3class", "second_hv-secfpn_kitti-3d-3class"]
)
def test_kitti_configs_keep_mmdetection3d_settings(name: str) -> None:
    config = load_config(name)
    assert config.data["class_names"] == ["Pedestrian", "Cyclist", "Car"]  # MMDetection3D's label order
    train = config.data["data"]["train"]["dataset"]
    assert train["root"] == config.data["data_root"] == "data/kitti"
    assert config.data["optimizer"]["type"] == "AdamW" and config.data["optimizer"]["weight_decay"] == 0.01
    assert (
        config.data["schedule"]["lr"]["type"] == "onecycle"
        and config.data["schedule"]["lr"]["pct_start"] == 0.4
    )
    assert config.data["model"]["bbox_head"]["test_cfg"] == {
        "use_rotate_nms": True,
        "nms_thr": 0.01,
        "score_thr": 0.1,
        "nms_pre": 100,
        "max_num": 50,
    }
    overridden = load_config(name, ["data_root=/datasets/kitti"])
    assert overridden.data["data"]["val"]["dataset"]["root"] == "/datasets/kitti"
    assert overridden.data["data"]["train"]["dataset"]["pipeline"][0]["db_path"].startswith(
        "/datasets/kitti/"
    )


def test_second_anchors_span_the_range_and_pointpillars_anchors_sit_in_cells() -> None:
    pytest.importorskip(
        "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
    )
    second = pc3d.inference.load_model("second_hv-secfpn_kitti-3d-3class").bbox_head.anchor_generator
    anchors = second.grid_anchors([(200, 176)])[0].reshape(200, 176, 6, 7)
    assert anchors[0, 0, 0, :2].tolist() == [0.0, -40.0] and anchors[-1, -1, 0, :2].tolist() == pytest.approx(
        [70.4, 40.0]
    )
    pillars = pc3d.inference.load_model("pointpillars_hv-secfpn_kitti-3d-3class").bbox_head.anchor_generator
    anchors = pillars.grid_anchors([(248, 216)])[0].reshape(248, 216, 6, 7)
    assert anchors[0, 0, 0, :2].tolist() == pytest.approx([0.16, -39.52])


def test_the_engine_maps_mmdetection3d_checkpoints() -> None:
    sparse = torch.randn(3, 3, 3, 4, 16)  # MMCV's (kD, kH, kW, C_in, C_out)
    state = {
        "meta": {"mmdet3d_version": "1.4.0"},
        "state_dict": {"middle_encoder.conv_input.0.weight": sparse},
    }
    weights = model_state_from(state, "second.pth")
    assert torch.equal(weights["middle_encoder.conv_input.0.weight"], sparse.permute(4, 0, 1, 2, 3))
    state["state_dict"]["pts_middle_encoder.conv_input.0.weight"] = sparse
    with pytest.raises(Exception, match=r"second\.pth: 1 keys .*pts_middle_encoder\.conv_input\.0\.weight"):
        model_state_from(state, "second.pth")


def test_a_bare_mmdetection3d_second_state_dict_is_recognised_by_its_layout(tmp_path: Path) -> None:
    """``torch.save(model.state_dict())`` of MMDetection3D's SECOND: no wrapper, no meta, and its
    sparse kernels in MMCV's layout; pc3d's own bare state dict (spconv's layout) stays as it is."""
    pytest.importorskip(
        "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
    )
    from pc3d.nn.checkpoint_mmdet3d import has_mmcv_sparse_layout

    config = "second_hv-secfpn_kitti-3d-3class"
    torch.manual_seed(0)
    ours = pc3d.inference.load_model(config, optimize=False).state_dict()
    sparse = [k for k, v in ours.items() if k.startswith("middle_encoder.") and v.dim() == 5]
    assert len(sparse) >= 10
    mmcv = {k: v.permute(1, 2, 3, 4, 0).contiguous() if k in sparse else v for k, v in ours.items()}
    assert has_mmcv_sparse_layout(mmcv) and not has_mmcv_sparse_layout(ours)
    for name, state in (("mmcv", mmcv), ("pc3d", ours)):
        torch.save(state, tmp_path / f"{name}.pth")
        loaded = pc3d.inference.load_model(config, tmp_path / f"{name}.pth", optimize=False).state_dict()
        assert all(torch.equal(loaded[k], ours[k]) for k in ours), name
    converted = tmp_path / "converted.pth"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(["checkpoint", "convert", "--from", "mmdet3d", str(tmp_path / "mmcv.pth"), str(converted)])
            == 0
        )
    from pc3d.engine.checkpoint import load_checkpoint

    native = load_checkpoint(converted)["model"]
    assert all(torch.equal(native[k], ours[k]) for k in ours)


# The zoo PointPillars with narrow layers: random weights load and run in seconds.
NARROW = REPO / "tests" / "data" / "configs" / "pointpillars-narrow_hv-secfpn_kitti-3d-3class.yaml"


def test_pc3d_test_evaluates_an_mmdetection3d_checkpoint_on_kitti(tmp_path: Path) -> None:
    config = NARROW
    torch.manual_seed(0)
    checkpoint = tmp_path / "mmdet3d.pth"
    torch.save(
        {"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": pc3d.inference.load_model(config).state_dict()},
        checkpoint,
    )
    results = tmp_path / "results.json"
    argv = [
        "test",
        str(config),
        str(checkpoint),
        "--json",
        str(results),
        "--device",
        "cpu",
        "--set",
        f"data_root={REPO / 'tests' / 'data' / 'kitti'}",
        'data.val.dataset.split=["000001"]',
        "data.val.num_workers=0",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    record = json.loads(results.read_text())
    assert record["num_samples"] == 1 and record["checkpoint"] == str(checkpoint)
    assert any(re.fullmatch(r"KITTI/Car_3D_AP40_moderate_strict", key) for key in record)
    assert record["optimized"] is False
    # The inference copy (folded norms, channels-last, empty BEV tiles skipped) gives the same AP.
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*argv, "--optimize"]) == 0
    optimised = json.loads(results.read_text())
    assert optimised.pop("optimized") is True and record.pop("optimized") is False
    assert optimised.keys() == record.keys()
    for key, value in record.items():
        assert (
            optimised[key] == pytest.approx(value, abs=1e-6)
            if isinstance(value, float)
            else optimised[key] == value
        )
    # A checkpoint that records its classes in another order than the config's is refused, as by
    # pc3d infer: every label would name the wrong class.
    torch.save(
        {
            "meta": {
                "mmdet3d_version": "1.4.0",
                "dataset_meta": {"classes": ["Car", "Pedestrian", "Cyclist"]},
            },
            "state_dict": pc3d.inference.load_model(config).state_dict(),
        },
        checkpoint,
    )
    errors = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
        assert main(argv) == 2
    assert (
        "the checkpoint's classes ['Car', 'Pedestrian', 'Cyclist'] differ from the config's"
        in errors.getvalue()
    )


def test_the_python_api_snippet_in_the_docs_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "det3d.md").read_text()
    snippet = next(
        block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "pc3d.inference" in block
    )
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    weights = pc3d.inference.load_model("pointpillars_hv-secfpn_kitti-3d-3class").state_dict()
    weights["bbox_head.conv_cls.bias"].zero_()  # scores near 0.5, above the config's threshold
    torch.save(
        {"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": weights},
        tmp_path / "checkpoints" / "pointpillars_kitti.pth",
    )
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "tests" / "data" / "kitti").symlink_to(REPO / "tests" / "data" / "kitti")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "docs/det3d.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines and all(line.split()[0] in ("Pedestrian", "Cyclist", "Car") for line in lines)


def test_training_starts_from_an_mmdetection3d_checkpoint(tmp_path: Path) -> None:
    from pc3d.engine.checkpoint import load_checkpoint

    config = NARROW
    torch.manual_seed(0)
    weights = pc3d.inference.load_model(config).state_dict()
    for key in ("bbox_head.conv_cls.weight", "backbone.blocks.0.0.weight"):
        weights[key] = torch.randn_like(weights[key])  # unlike any initialisation the run could draw
    checkpoint = tmp_path / "mmdet3d.pth"
    torch.save({"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": weights}, checkpoint)
    work = tmp_path / "run"
    argv = [
        "train",
        str(config),
        "--work-dir",
        str(work),
        "--load-from",
        str(checkpoint),
        "--device",
        "cpu",
        "--set",
        f"data_root={REPO / 'tests' / 'data' / 'kitti'}",
        'data.train.dataset.split=["000001"]',
        'data.val.dataset.split=["000001"]',
        "data.train.dataset.pipeline=[{type: PointShuffle}]",
        "data.train.batch_size=1",
        "data.train.num_workers=0",
        "schedule.epochs=1",
        "train.eval_every=null",
        "optimizer.lr=0.0",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    trained = load_checkpoint(next(work.glob("epoch_*.pth")))["model"]
    # lr 0 and AdamW: the convolutions keep the loaded weights (batch-norm statistics move).
    assert torch.equal(trained["bbox_head.conv_cls.weight"], weights["bbox_head.conv_cls.weight"])
    assert torch.equal(trained["backbone.blocks.0.0.weight"], weights["backbone.blocks.0.0.weight"])
