"""seg plugin data: the real-format data sets, the synthetic LiDAR set (generated and written),
augmentations moving points and labels together, the shapes masks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.data.synthetic import SEMANTIC_CLASSES, generate_frame, write_synthetic_kitti
from pc3d.errors import FormatError
from pc3d.io.semseg import S3DIS_CLASSES, SCANNET_CLASSES, SEMANTICKITTI_CLASSES
from pc3d_seg import IndoorSeg, SemanticKittiSeg, ShapesSeg, SyntheticLidarSeg, collate_clouds
from pc3d_seg.datasets import val_frames
from pc3d_seg.transforms import SegCrop, SegFlip, SegJitter, SegPointSample, SegRotateZ, SegScale

DATA = Path(__file__).resolve().parents[3] / "tests/data"


def copy_semantickitti(tmp_path: Path) -> Path:
    root = tmp_path / "semantickitti"
    shutil.copytree(DATA / "semantickitti", root)
    return root


def test_semantickitti_sample():
    dataset = SemanticKittiSeg(
        str(DATA / "semantickitti"), sequences=[0], class_names=list(SEMANTICKITTI_CLASSES)
    )
    assert len(dataset) == 1 and dataset.class_names == list(SEMANTICKITTI_CLASSES)
    sample = dataset[0]
    assert sample["name"] == "00/000000" and sample["points"].shape == (50, 4)
    counts = dict(zip(*np.unique(sample["labels"].numpy(), return_counts=True)))
    building, vegetation, trunk, pole = (
        SEMANTICKITTI_CLASSES.index(n) for n in ("building", "vegetation", "trunk", "pole")
    )
    assert counts == {-1: 3, building: 25, vegetation: 17, trunk: 3, pole: 2}
    batch = collate_clouds([sample, sample])
    assert len(batch["points"]) == 2 and batch["name"] == ["00/000000", "00/000000"]


def test_semantickitti_errors_name_the_file(tmp_path: Path):
    root = copy_semantickitti(tmp_path)
    label = root / "sequences/00/labels/000000.label"
    raw = np.fromfile(label, dtype="<u4")
    label.chmod(0o644)
    raw[:-1].tofile(label)  # one label short
    with pytest.raises(
        FormatError, match=r"000000\.label: holds 49 label entries but its point cloud has 50 points"
    ):
        SemanticKittiSeg(str(root), sequences=["00"])[0]
    raw[7] = 42  # not a SemanticKITTI id
    raw.tofile(label)
    with pytest.raises(
        FormatError,
        match=r"000000\.label: label ids 42 \(1 point\) are not in the SemanticKITTI learning map",
    ):
        SemanticKittiSeg(str(root), sequences=["00"])[0]
    label.unlink()
    with pytest.raises(FileNotFoundError, match=r"has no label file .*000000\.label"):
        SemanticKittiSeg(str(root), sequences=["00"])
    with pytest.raises(FileNotFoundError, match=r"no scan in .*sequences/08/velodyne"):
        SemanticKittiSeg(str(root))
    with pytest.raises(
        FormatError, match=r"SemanticKittiSeg.class_names: class names .* mismatched class maps"
    ):
        SemanticKittiSeg(str(DATA / "semantickitti"), sequences=["00"], class_names=["car", "road"])


def test_points_with_nan_are_dropped_with_their_labels_or_refused(tmp_path: Path):
    from pc3d.io.points import NonFinitePointsWarning

    whole = SemanticKittiSeg(str(DATA / "semantickitti"), sequences=["00"])[0]
    root = copy_semantickitti(tmp_path)
    scan = root / "sequences/00/velodyne/000000.bin"
    points = np.fromfile(scan, dtype=np.float32).reshape(-1, 4)
    points[4, 0] = np.nan  # a coordinate
    points[9, 3] = np.inf  # a remission the model would read
    scan.chmod(0o644)
    points.tofile(scan)
    with pytest.warns(NonFinitePointsWarning, match=r"000000\.bin: dropped 2 of 50 points"):
        sample = SemanticKittiSeg(str(root), sequences=["00"])[0]
    kept = np.delete(np.arange(50), [4, 9])
    assert torch.equal(sample["points"], whole["points"][kept])
    assert torch.equal(sample["labels"], whole["labels"][kept])  # each label stays with its point
    with pytest.raises(FormatError, match=r"000000\.bin: 2 of 50 points have NaN or infinite values"):
        SemanticKittiSeg(str(root), sequences=["00"], nan_policy="raise")[0]


def test_indoor_samples_and_errors(tmp_path: Path):
    s3dis = IndoorSeg(str(DATA / "s3dis"), "s3dis", class_names=list(S3DIS_CLASSES))
    sample = s3dis[0]
    assert s3dis.scenes == ["Area_1_office_2"] and sample["points"].shape == (100, 6)
    assert (
        0.0 <= float(sample["points"][:, 3:].min()) and float(sample["points"][:, 3:].max()) <= 1.0
    )  # colour in [0, 1]
    assert sample["labels"].min() == 0 and sample["labels"].max() == 12
    scannet = IndoorSeg(str(DATA / "scannet"), "scannet")
    # NYU40 ids 0, 15, 18, 22, 25, 38, 40 (27 points of 100) are not benchmark classes.
    assert scannet.class_names == list(SCANNET_CLASSES) and int((scannet[0]["labels"] == -1).sum()) == 27
    with pytest.raises(FormatError, match="mismatched class maps"):
        IndoorSeg(str(DATA / "scannet"), "scannet", class_names=list(S3DIS_CLASSES))
    root = tmp_path / "s3dis"
    shutil.copytree(DATA / "s3dis", root)
    mask = root / "semantic_mask/Area_1_office_2.bin"
    mask.chmod(0o644)
    values = np.fromfile(mask, dtype="<i8")
    values[3] = 13
    values.tofile(mask)
    with pytest.raises(
        FormatError,
        match=r"Area_1_office_2\.bin: labels out of range: 13 \(1 point\); the S3DIS class map takes ids 0\.\.12",
    ):
        IndoorSeg(str(root))[0]
    with pytest.raises(FileNotFoundError, match=r"scene 'nope' has no .*points/nope\.bin"):
        IndoorSeg(str(root), scenes=["nope"])
    with pytest.raises(FileNotFoundError, match=r"root 'missing' is not a folder"):
        IndoorSeg("missing")


def test_synthetic_set_generated_equals_written(tmp_path: Path):
    generated = SyntheticLidarSeg(num_scenes=5, split="val", seed=3, class_names=list(SEMANTIC_CLASSES))
    assert generated.frames == np.flatnonzero(val_frames(5, 0.2)).tolist() == [0]
    assert SyntheticLidarSeg(num_scenes=5, split="train", seed=3).frames == [1, 2, 3, 4]
    root = write_synthetic_kitti(tmp_path / "synth", scenes=5, seed=3, point_labels=True)
    written = SyntheticLidarSeg(split="val", root=str(root))
    assert written.frames == generated.frames
    a, b = generated[0], written[0]
    assert torch.equal(a["points"], b["points"]) and torch.equal(a["labels"], b["labels"])
    assert torch.equal(a["labels"], torch.from_numpy(generate_frame(3, 0).sweep.semantic))
    assert a["name"] == "000000" and int(a["labels"].max()) < len(SEMANTIC_CLASSES)
    with pytest.raises(FormatError, match="split must be"):
        SyntheticLidarSeg(num_scenes=5, split="test")  # type: ignore[arg-type]


def labelled_cloud() -> dict:
    points = torch.tensor([[1.0, 2.0, 0.5, 0.1], [-3.0, 0.5, 1.0, 0.2], [0.2, -0.4, 2.0, 0.3]])
    return {"points": points, "labels": torch.tensor([0, 1, 2]), "name": "x"}


def test_geometric_transforms_keep_labels_and_move_points_together():
    torch.manual_seed(0)
    sample = SegRotateZ((np.pi / 2, np.pi / 2))(labelled_cloud())
    torch.testing.assert_close(sample["points"][0], torch.tensor([-2.0, 1.0, 0.5, 0.1]))
    assert sample["labels"].tolist() == [0, 1, 2]
    scaled = SegScale((2.0, 2.0))(labelled_cloud())
    torch.testing.assert_close(scaled["points"][:, :3], labelled_cloud()["points"][:, :3] * 2)
    assert torch.equal(scaled["points"][:, 3], labelled_cloud()["points"][:, 3])  # intensity untouched
    flipped = SegFlip(y_ratio=1.0, x_ratio=1.0)(labelled_cloud())
    torch.testing.assert_close(flipped["points"][:, :2], -labelled_cloud()["points"][:, :2])
    jittered = SegJitter(std=1.0, clip=0.05)(labelled_cloud())
    assert (jittered["points"][:, :3] - labelled_cloud()["points"][:, :3]).abs().max() <= 0.05 + 1e-6


def test_sampling_and_crops_keep_each_point_with_its_label():
    torch.manual_seed(0)
    xyz = torch.rand(500, 3) * 10
    sample = {
        "points": torch.cat([xyz, torch.arange(500.0)[:, None]], dim=1),
        "labels": torch.arange(500),
        "name": "x",
    }
    for transform in (
        SegPointSample(64),
        SegPointSample(800),
        SegCrop(size=2.0),
        SegCrop(size=3.0, num_points=100),
    ):
        out = transform({**sample})
        # The 4th column carries each point's original index: labels must follow it.
        assert torch.equal(out["labels"], out["points"][:, 3].long())
    assert len(SegPointSample(64)({**sample})["points"]) == 64
    upsampled = SegPointSample(800)({**sample})
    assert len(upsampled["points"]) == 800 and set(upsampled["labels"].tolist()) == set(range(500))
    crop = SegCrop(size=2.0)({**sample})
    assert crop["points"][:, :2].abs().max() <= 1.0  # re-centred on its centre point
    assert len(SegCrop(size=3.0, num_points=100)({**sample})["points"]) == 100
    # The engine seeds torch per sample: the same seed gives the same augmentation.
    torch.manual_seed(5)
    first = SegCrop(size=2.0)({**sample})["labels"]
    torch.manual_seed(5)
    assert torch.equal(first, SegCrop(size=2.0)({**sample})["labels"])
    with pytest.raises(FormatError, match="SegScale.scale_range must be positive"):
        SegScale((0.0, 1.0))


def test_shapes_masks_are_exact_and_deterministic():
    dataset = ShapesSeg(num_images=4, seed=0, image_size=48)
    sample = dataset[1]
    assert sample["images"].shape == (3, 48, 48) and sample["masks"].shape == (48, 48)
    assert torch.equal(sample["masks"], dataset[1]["masks"]) and not torch.equal(
        sample["masks"], dataset[2]["masks"]
    )
    masks = torch.stack([dataset[i]["masks"] for i in range(4)])
    assert set(masks.unique().tolist()) <= {0, 1, 2, 3} and (masks > 0).any() and (masks == 0).any()
    # A shape is one flat colour: the image varies far less inside a shape than over the background.
    image, mask = sample["images"], sample["masks"]
    inside = image[:, mask == int(mask.max())]
    assert float(inside.std(dim=1).max()) < 1e-5
    torch.manual_seed(0)
    flipped = ShapesSeg(num_images=4, seed=0, image_size=48, flip=True)
    pairs = [flipped[1] for _ in range(6)]
    assert any(torch.equal(p["masks"], mask.flip(-1)) for p in pairs) and any(
        torch.equal(p["masks"], mask) for p in pairs
    )
    with pytest.raises(IndexError):
        dataset[4]
