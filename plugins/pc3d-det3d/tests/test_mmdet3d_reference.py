"""MMDetection3D's PointPillars and SECOND checkpoints in the zoo's configs give MMDetection3D's detections.

Each reference checkpoint (`../shared/reference/mmdet3d`, see its README) is loaded as it is into
the model built from pc3d's own config, with the README's one change (``score_thr`` 0.0), and run
on KITTI frame 000008: the voxel count, the raw head outputs (1e-4) and the final boxes, scores and
labels equal what MMDetection3D 1.4.0 computed. Skipped when the reference is absent.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import pc3d.inference

REPO = Path(__file__).resolve().parents[3]
REFERENCE = REPO / ".." / "shared" / "reference" / "mmdet3d"
FRAME = REPO / ".." / "shared" / "data" / "kitti" / "mmdet3d_demo" / "000008.bin"
CASES = {
    "pointpillars_kitti-3class": ("pointpillars_hv-secfpn_kitti-3d-3class", [19, 21, 10]),
    "second_kitti-3class": ("second_hv-secfpn_kitti-3d-3class", [10, 11, 20]),
}
pytestmark = pytest.mark.skipif(
    not (REFERENCE.is_dir() and FRAME.is_file()),
    reason=f"the MMDetection3D reference outputs are not here ({REFERENCE.resolve()}, {FRAME.resolve()})",
)


def sorted_by_score(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.lexsort((labels, -scores))
    return boxes[order], scores[order], labels[order]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_checkpoint_in_zoo_config_gives_mmdetection3d_detections(name: str) -> None:
    config_name, per_class = CASES[name]
    if name.startswith("second"):
        pytest.importorskip(
            "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
        )
    reference = np.load(REFERENCE / f"{name}_seed0_000008.npz")
    model = pc3d.inference.load_model(
        config_name, REFERENCE / f"{name}_seed0.pth", overrides=["model.bbox_head.test_cfg.score_thr=0.0"]
    )
    assert model.class_names == ["Pedestrian", "Cyclist", "Car"]
    points = pc3d.inference.as_point_tensor(FRAME)
    bounds = torch.tensor(model.voxel.point_cloud_range)
    # MMDetection3D's test pipeline keeps the points strictly inside the range.
    points = points[((points[:, :3] > bounds[:3]) & (points[:, :3] < bounds[3:])).all(dim=1)]
    assert points.shape[0] == int(reference["num_points_in_range"])
    with torch.no_grad():
        voxels, _, _ = model.voxelize([points])
        assert voxels.shape[0] == int(reference["num_voxels"])
        raw = model([points])
    for key, output in zip(("cls_score_0", "bbox_pred_0", "dir_cls_pred_0"), raw, strict=True):
        expected = torch.from_numpy(reference[key])
        assert output.shape == expected.shape, key
        assert (output - expected).abs().max().item() < 1e-4, key

    dets = pc3d.inference.detect(model, points)
    assert len(dets) == len(reference["scores"]) == sum(per_class)
    labels = dets.labels.numpy()
    assert np.bincount(labels, minlength=3).tolist() == per_class
    boxes, scores, labels = sorted_by_score(dets.boxes.tensor.numpy(), dets.scores.numpy(), labels)
    ref_boxes, ref_scores, ref_labels = sorted_by_score(
        reference["boxes"], reference["scores"], reference["labels"]
    )
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    np.testing.assert_allclose(boxes[:, :6], ref_boxes[:, :6], atol=1e-3)
    yaw_difference = np.remainder(boxes[:, 6] - ref_boxes[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert np.abs(yaw_difference).max() < 1e-3


@pytest.mark.parametrize("name", sorted(CASES))
def test_converted_reference_checkpoint_loads_as_the_original(name: str, tmp_path: Path) -> None:
    from pc3d.cli.checkpoint import convert_mmdet3d_checkpoint

    config_name, _ = CASES[name]
    if name.startswith("second"):
        pytest.importorskip(
            "spconv.pytorch", reason="SECOND's sparse encoder needs spconv 2 (pip install spconv)"
        )
    original = REFERENCE / f"{name}_seed0.pth"
    native = tmp_path / "native.pth"
    state = convert_mmdet3d_checkpoint(original, native, config=config_name)
    assert state["meta"]["mmdet3d_version"] == "1.4.0" and state["meta"]["class_names"] == [
        "Pedestrian",
        "Cyclist",
        "Car",
    ]
    direct = pc3d.inference.load_model(config_name, original).state_dict()
    converted = pc3d.inference.load_model(config_name, native).state_dict()
    assert direct.keys() == converted.keys()
    assert all(torch.equal(direct[key], converted[key]) for key in direct)
