"""MMDetection3D 1.4 checkpoints in pc3d: the key table, and the same raw head outputs as MMDetection3D.

The reference (`../shared/reference/mmdet3d`, see its README) holds MMDetection3D's PointPillars
and SECOND checkpoints (random weights) and what MMDetection3D computed with them on KITTI frame
000008; the parity tests skip when it is absent. The key-table tests need no reference.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.errors import FormatError
from pc3d.nn import (
    SECONDFPN,
    HardSimpleVFE,
    PillarFeatureNet,
    PointPillarsScatter,
    SECONDBackbone,
    convert_mmdet3d_state_dict,
    is_mmdet3d_checkpoint,
    load_mmdet3d_checkpoint,
    read_mmdet3d_checkpoint,
)
from pc3d.ops import hard_voxelize

SHARED = Path(__file__).parents[2].parent / "shared"
REFERENCE = SHARED / "reference" / "mmdet3d"
FRAME = SHARED / "data" / "kitti" / "mmdet3d_demo" / "000008.bin"
MODELS = ("pointpillars_kitti-3class", "second_kitti-3class")
needs_reference = pytest.mark.skipif(
    not (REFERENCE.is_dir() and FRAME.is_file()),
    reason=f"MMDetection3D reference not found ({REFERENCE}, {FRAME})",
)


class AnchorHeadConvs(nn.Module):
    """The three 1x1 convs of MMDetection3D's `Anchor3DHead` (raw outputs, no anchors or decoding)."""

    def __init__(
        self, in_channels: int, num_anchors: int = 6, num_classes: int = 3, box_code_size: int = 7
    ) -> None:
        super().__init__()
        self.conv_cls = nn.Conv2d(in_channels, num_anchors * num_classes, 1)
        self.conv_reg = nn.Conv2d(in_channels, num_anchors * box_code_size, 1)
        self.conv_dir_cls = nn.Conv2d(in_channels, num_anchors * 2, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.conv_cls(x), self.conv_reg(x), self.conv_dir_cls(x)


class VoxelNetConvs(nn.Module):
    """PointPillars / SECOND from MMDetection3D's resolved model config, up to the raw head convs."""

    def __init__(self, model: dict[str, Any]) -> None:
        super().__init__()
        vfe, middle, backbone, neck = (
            model["voxel_encoder"],
            model["middle_encoder"],
            model["backbone"],
            model["neck"],
        )
        self.voxel_encoder: nn.Module
        self.middle_encoder: nn.Module
        if vfe["type"] == "PillarFeatureNet":
            self.voxel_encoder = PillarFeatureNet(
                vfe["in_channels"],
                vfe["feat_channels"],
                vfe["with_distance"],
                voxel_size=vfe["voxel_size"],
                point_cloud_range=vfe["point_cloud_range"],
            )
            self.middle_encoder = PointPillarsScatter(middle["in_channels"], middle["output_shape"])
        else:
            from pc3d.nn import SparseEncoder

            assert vfe["type"] == "HardSimpleVFE" and middle["type"] == "SparseEncoder"
            self.voxel_encoder = HardSimpleVFE()
            self.middle_encoder = SparseEncoder(middle["in_channels"], middle["sparse_shape"])
        self.backbone = SECONDBackbone(
            backbone["in_channels"],
            backbone["out_channels"],
            backbone["layer_nums"],
            backbone["layer_strides"],
        )
        self.neck = SECONDFPN(neck["in_channels"], neck["out_channels"], neck["upsample_strides"])
        self.bbox_head = AnchorHeadConvs(model["bbox_head"]["in_channels"])

    def forward(
        self, voxels: Tensor, num_points: Tensor, coords: Tensor, batch_size: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        features = self.voxel_encoder(voxels, num_points, coords)
        return self.bbox_head(self.neck(self.backbone(self.middle_encoder(features, coords, batch_size))))


def load_config(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((REFERENCE / f"{name}.config.json").read_text())
    return config


def frame_voxels(config: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """MMDetection3D's test pipeline and data preprocessor on ``FRAME``.

    Returns:
        The points strictly inside the range ``[N, 4]``, and their hard voxels: ``voxels [V, M, 4]``,
        ``coords [V, 4]`` (batch column 0 prepended) and ``num_points [V]``.
    """
    points = torch.from_numpy(np.fromfile(FRAME, dtype=np.float32).reshape(-1, 4))
    bounds = torch.tensor(config["point_cloud_range"], dtype=torch.float32)
    points = points[((points[:, :3] > bounds[:3]) & (points[:, :3] < bounds[3:])).all(dim=1)]
    # Hard voxelization with the test cap on voxels.
    layer = config["model"]["data_preprocessor"]["voxel_layer"]
    voxels, coords, num_points = hard_voxelize(
        points,
        layer["voxel_size"],
        layer["point_cloud_range"],
        layer["max_num_points"],
        layer["max_voxels"][1],
    )
    return points, voxels, F.pad(coords, (1, 0)), num_points


@needs_reference
@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_raw_head_outputs_match_mmdetection3d(name: str) -> None:
    if name.startswith("second"):
        pytest.importorskip(
            "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
        )
    config = load_config(name)
    reference = np.load(REFERENCE / f"{name}_seed0_000008.npz")
    model = VoxelNetConvs(config["model"]).eval()
    meta = load_mmdet3d_checkpoint(model, REFERENCE / f"{name}_seed0.pth")
    assert meta["mmdet3d_version"] == "1.4.0"
    points, voxels, coords, num_points = frame_voxels(config)
    assert points.shape[0] == int(reference["num_points_in_range"])
    assert voxels.shape[0] == int(reference["num_voxels"])
    with torch.no_grad():
        outputs = model(voxels, num_points, coords, batch_size=1)
    for key, output in zip(("cls_score_0", "bbox_pred_0", "dir_cls_pred_0"), outputs, strict=True):
        expected = torch.from_numpy(reference[key])
        assert output.shape == expected.shape, key
        difference = (output - expected).abs().max().item()
        print(f"{name} {key}: max |pc3d - MMDetection3D| = {difference:.3g}")
        assert difference < 1e-4, key


@needs_reference
@pytest.mark.parametrize("name", MODELS)
def test_reference_checkpoint_is_recognised_and_fully_mapped(name: str) -> None:
    checkpoint = read_mmdet3d_checkpoint(REFERENCE / f"{name}_seed0.pth")
    assert is_mmdet3d_checkpoint({"meta": checkpoint.meta, "state_dict": checkpoint.state_dict})
    assert checkpoint.meta["dataset_meta"]["classes"] == ["Pedestrian", "Cyclist", "Car"]
    converted = convert_mmdet3d_state_dict(checkpoint.state_dict)
    assert list(converted) == list(checkpoint.state_dict)  # every key mapped, names kept
    for key, value in checkpoint.state_dict.items():
        if value.dim() == 5:  # MMCV (kD, kH, kW, C_in, C_out) -> spconv 2 (C_out, kD, kH, kW, C_in)
            assert torch.equal(converted[key], value.permute(4, 0, 1, 2, 3))
        else:
            assert converted[key] is value


def synthetic_checkpoint() -> dict[str, Any]:
    state_dict = {
        "backbone.blocks.0.0.weight": torch.randn(8, 4, 3, 3),
        "middle_encoder.conv_input.0.weight": torch.randn(3, 3, 3, 4, 16),
        "middle_encoder.conv_input.1.running_mean": torch.zeros(16),
        "bbox_head.conv_cls.weight": torch.randn(18, 8, 1, 1),
    }
    return {"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": state_dict}


def test_unmapped_and_misshaped_keys_are_listed() -> None:
    state_dict = synthetic_checkpoint()["state_dict"]
    state_dict["bbox_head.conv_angle.weight"] = torch.zeros(1)
    state_dict["pts_backbone.blocks.0.0.weight"] = torch.zeros(1)
    state_dict["middle_encoder.conv_out.0.weight"] = torch.zeros(3, 64, 128)
    with pytest.raises(FormatError) as error:
        convert_mmdet3d_state_dict(state_dict, source="model.pth")
    message = str(error.value)
    assert message.startswith("model.pth: 2 keys no row")
    assert "bbox_head.conv_angle.weight" in message and "pts_backbone.blocks.0.0.weight" in message
    assert "middle_encoder.conv_out.0.weight (3, 64, 128)" in message


def test_spconv2_checkpoints_and_component_names() -> None:
    state_dict = synthetic_checkpoint()["state_dict"]
    spconv_layout = {"middle_encoder.conv_input.0": {"version": 2}}
    converted = convert_mmdet3d_state_dict(
        state_dict, component_names={"bbox_head": "head"}, metadata=spconv_layout
    )
    assert converted["middle_encoder.conv_input.0.weight"] is state_dict["middle_encoder.conv_input.0.weight"]
    assert "head.conv_cls.weight" in converted and "bbox_head.conv_cls.weight" not in converted
    converted = convert_mmdet3d_state_dict(state_dict)
    assert converted["middle_encoder.conv_input.0.weight"].shape == (16, 3, 3, 3, 4)


def test_detection_by_meta_or_by_keys() -> None:
    assert is_mmdet3d_checkpoint(synthetic_checkpoint())
    assert is_mmdet3d_checkpoint({"state_dict": {"voxel_encoder.pfn_layers.0.linear.weight": torch.zeros(1)}})
    assert not is_mmdet3d_checkpoint({"state_dict": {"backbone.stem.0.weight": torch.zeros(1)}})
    assert not is_mmdet3d_checkpoint({"model": {}}) and not is_mmdet3d_checkpoint([1, 2])


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("code ran while loading",))


def test_files_that_are_not_mmdetection3d_checkpoints(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save({"model": {"weight": torch.zeros(1)}}, plain)
    with pytest.raises(FormatError, match=r"plain\.pth: not an MMDetection3D checkpoint"):
        read_mmdet3d_checkpoint(plain)
    unsafe = tmp_path / "unsafe.pth"
    with unsafe.open("wb") as f:
        pickle.dump({"meta": {"mmdet3d_version": "1.4.0"}, "state_dict": {}, "x": Evil()}, f, protocol=2)
    with pytest.raises(FormatError, match=r"unsafe\.pth: not a loadable torch checkpoint"):
        read_mmdet3d_checkpoint(unsafe)  # weights_only=True refuses to run the pickled call


class Tiny(nn.Module):
    def __init__(self, out_channels: int = 8) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(4, out_channels, 3, bias=False))])
        self.bbox_head = nn.Module()
        self.bbox_head.conv_cls = nn.Conv2d(8, 18, 1)


def test_loading_into_a_model_checks_every_key_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    checkpoint = {
        "meta": {"mmdet3d_version": "1.4.0"},
        "state_dict": {
            "backbone.blocks.0.0.weight": torch.randn(8, 4, 3, 3),
            "bbox_head.conv_cls.weight": torch.randn(18, 8, 1, 1),
        },
    }
    torch.save(checkpoint, path)
    with pytest.raises(FormatError) as error:
        load_mmdet3d_checkpoint(Tiny(out_channels=6), path)
    message = str(error.value)
    assert "1 model keys the checkpoint does not have (bbox_head 1): bbox_head.conv_cls.bias" in message
    assert "backbone.blocks.0.0.weight: checkpoint (8, 4, 3, 3) vs model (6, 4, 3, 3)" in message
    checkpoint["state_dict"]["bbox_head.conv_cls.bias"] = torch.randn(18)
    torch.save(checkpoint, path)
    model = Tiny()
    assert load_mmdet3d_checkpoint(model, path)["mmdet3d_version"] == "1.4.0"
    assert torch.equal(model.bbox_head.conv_cls.bias, checkpoint["state_dict"]["bbox_head.conv_cls.bias"])
