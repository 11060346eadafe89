"""`pc3d.nn.weight_fit`: a short, counted description of weights that do not fit a model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pc3d.engine.checkpoint import CheckpointError
from pc3d.engine.state import class_order_mismatch, load_model_state
from pc3d.nn.layers import FrozenBatchNorm2d
from pc3d.nn.weight_fit import MAX_NAMED, weight_mismatch


def pillars_like() -> nn.Module:
    model = nn.Module()
    model.voxel_encoder = nn.Linear(4, 8)
    model.backbone = nn.Sequential(nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16))
    return model


def sparse_like() -> nn.Module:
    model = nn.Module()
    model.middle_encoder = nn.Sequential(*(nn.Linear(8, 8) for _ in range(20)))
    model.backbone = nn.Sequential(nn.Conv2d(32, 16, 3), nn.BatchNorm2d(16))
    return model


def test_weights_that_fit_give_none() -> None:
    assert weight_mismatch(pillars_like().state_dict(), pillars_like().state_dict()) is None


def test_another_architecture_is_counted_per_module_and_named_briefly() -> None:
    message = weight_mismatch(pillars_like().state_dict(), sparse_like().state_dict())
    assert message is not None
    # 40 keys the model lacks, all in middle_encoder; 2 the checkpoint lacks; 1 of another shape.
    assert message.startswith(
        "40 checkpoint keys the model does not have (middle_encoder 40): middle_encoder.0.weight, "
    )
    assert f"... ({40 - MAX_NAMED} more)" in message
    assert (
        "; 2 model keys the checkpoint does not have (voxel_encoder 2): voxel_encoder.weight, voxel_encoder.bias"
        in message
    )
    assert (
        "; 1 keys with other shapes: backbone.0.weight: checkpoint (16, 32, 3, 3) vs model (16, 8, 3, 3)"
        in message
    )
    assert "middle_encoder.19.bias" not in message  # counted, not listed
    assert len(message) < 700


def test_loading_a_checkpoint_of_another_model_names_what_does_not_fit(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"other.pth: its weights do not fit Module \(a checkpoint of another"
    ) as error:
        load_model_state(pillars_like(), sparse_like().state_dict(), tmp_path / "other.pth")
    assert "40 checkpoint keys the model does not have (middle_encoder 40)" in str(error.value)


def test_load_hooks_still_decide_what_fits(tmp_path: Path) -> None:
    # A BatchNorm2d state dict loads into FrozenBatchNorm2d, whose hook drops num_batches_tracked.
    model = nn.Sequential(FrozenBatchNorm2d(4))
    trained = nn.Sequential(nn.BatchNorm2d(4))
    nn.init.uniform_(trained[0].weight)
    load_model_state(model, trained.state_dict(), tmp_path / "bn.pth")
    assert torch.equal(model[0].weight, trained[0].weight)


def test_class_order_mismatch_names_both_orders() -> None:
    model = pillars_like()
    model.class_names = ["Pedestrian", "Cyclist", "Car"]
    mmdet3d = {
        "meta": {"mmdet3d_version": "1.4.0", "dataset_meta": {"classes": ["Car", "Pedestrian", "Cyclist"]}}
    }
    message = class_order_mismatch(mmdet3d, "ckpt.pth", model)
    assert message is not None and message.startswith(
        "ckpt.pth: the checkpoint's classes ['Car', 'Pedestrian', 'Cyclist'] differ from the config's "
        "['Pedestrian', 'Cyclist', 'Car']"
    )
    mmdet3d["meta"]["dataset_meta"]["classes"] = ["Pedestrian", "Cyclist", "Car"]
    assert class_order_mismatch(mmdet3d, "ckpt.pth", model) is None
    assert class_order_mismatch({"state_dict": {}}, "plain.pth", model) is None  # records none
