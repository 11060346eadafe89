"""COCO data: the shapes generator, json checks, transforms, collate, and COCO mAP against
pycocotools run directly on the same files."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pc3d.errors import FormatError
from pc3d_det2d import (
    CocoDetection,
    CocoMetric,
    Detections2D,
    DetNormalize,
    DetPad,
    DetRandomFlip,
    DetResize,
    kitti_to_coco,
    load_coco_json,
    make_shapes_coco,
)
from pc3d_det2d.data import boxes_to_original

REPO = Path(__file__).resolve().parents[3]
KITTI = REPO / "tests" / "data" / "kitti" / "training"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    make_shapes_coco(root, "val", num_images=8, seed=3, image_size=64, min_size=10, max_size=30)
    return root


def test_generator_is_deterministic_and_reuses_its_files(tmp_path: Path) -> None:
    a = make_shapes_coco(
        tmp_path / "a", "train", num_images=5, seed=7, image_size=48, min_size=8, max_size=20
    )
    b = make_shapes_coco(
        tmp_path / "b", "train", num_images=5, seed=7, image_size=48, min_size=8, max_size=20
    )
    c = make_shapes_coco(
        tmp_path / "c", "train", num_images=5, seed=8, image_size=48, min_size=8, max_size=20
    )
    assert a.read_text() == b.read_text()
    for name in ("000000.png", "000004.png"):
        assert (tmp_path / "a/images/train" / name).read_bytes() == (
            tmp_path / "b/images/train" / name
        ).read_bytes()
    assert a.read_text() != c.read_text()
    stamp = a.stat().st_mtime_ns
    make_shapes_coco(tmp_path / "a", "train", num_images=5, seed=7, image_size=48, min_size=8, max_size=20)
    assert a.stat().st_mtime_ns == stamp  # same parameters: nothing rewritten


def test_generate_never_replaces_a_users_annotation_file(tmp_path: Path) -> None:
    """A config based on a shapes config inherits ``generate:``; pointed at a user's own COCO
    folder, it must not turn the user's json into synthetic shapes."""
    theirs = tmp_path / "mine" / "annotations" / "val.json"
    theirs.parent.mkdir(parents=True)
    for content in (
        '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "car"}]}',
        "not json",
    ):
        theirs.write_text(content)
        with pytest.raises(
            FormatError, match=r"val\.json exists and is not a pc3d shapes set, so it is not replaced"
        ):
            CocoDetection(
                str(tmp_path / "mine"), "annotations/val.json", generate={"num_images": 4, "seed": 0}
            )
        assert theirs.read_text() == content
        assert not (tmp_path / "mine" / "images").exists()
    # A shapes set of other parameters is the generator's own: rewritten.
    ours = make_shapes_coco(
        tmp_path / "ours", "val", num_images=3, seed=1, image_size=32, min_size=8, max_size=16
    )
    again = make_shapes_coco(
        tmp_path / "ours", "val", num_images=4, seed=1, image_size=32, min_size=8, max_size=16
    )
    assert again == ours and len(json.loads(ours.read_text())["images"]) == 4


def test_generated_boxes_are_the_drawn_shapes(shapes: Path) -> None:
    data = json.loads((shapes / "annotations/val.json").read_text())
    assert {c["name"] for c in data["categories"]} == {"rectangle", "ellipse", "triangle"}
    for ann in data["annotations"]:
        if ann["category_id"] != 1:  # rectangles fill their box exactly
            continue
        img = next(i for i in data["images"] if i["id"] == ann["image_id"])
        pixels = np.asarray(Image.open(shapes / "images" / img["file_name"]), dtype=np.int16)
        x, y, w, h = (int(v) for v in ann["bbox"])
        inside = pixels[y : y + h, x : x + w].reshape(-1, 3)
        assert (inside == inside[0]).all()  # one flat colour over the whole box
        ring = (
            np.concatenate([pixels[y : y + h, x - 1], pixels[y : y + h, x + w]])
            if 0 < x and x + w < pixels.shape[1]
            else None
        )
        if ring is not None:
            assert not (ring == inside[0]).all(axis=1).all()  # and it stops at the box edge


def _write(tmp_path: Path, annotations: list[dict], images: list[dict] | None = None) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images/a.png")
    data = {
        "images": images
        if images is not None
        else [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # json writes NaN as the literal NaN, which it reads back
    return path


@pytest.mark.parametrize(
    "bbox, problem",
    [
        ([1, 2, -3, 4], "width and height must be > 0"),
        ([1, 2, 3, 0], "width and height must be > 0"),
        ([1, 2, 3], "must be [x, y, width, height]"),
        ([1, float("nan"), 3, 4], "finite numbers"),
        ("1 2 3 4", "must be [x, y"),
    ],
)
def test_malformed_boxes_name_the_annotation_id_and_file(tmp_path: Path, bbox: object, problem: str) -> None:
    path = _write(
        tmp_path,
        [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]},
            {"id": 77, "image_id": 1, "category_id": 1, "bbox": bbox},
        ],
    )
    with pytest.raises(FormatError) as err:
        load_coco_json(path, tmp_path / "images")
    assert "annotation id 77" in str(err.value) and str(path) in str(err.value) and problem in str(err.value)


def test_missing_images_name_the_annotation_id(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"id": 12, "image_id": 9, "category_id": 1, "bbox": [0, 0, 2, 2]}])
    with pytest.raises(FormatError, match=r"annotation id 12 refers to image id 9, which is not in 'images'"):
        load_coco_json(path)
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"}]
    path = _write(tmp_path, [{"id": 31, "image_id": 2, "category_id": 1, "bbox": [0, 0, 2, 2]}], images)
    with pytest.raises(FormatError) as err:
        CocoDetection(root=str(tmp_path), ann_file="bad.json")
    assert "gone.png does not exist" in str(err.value) and "annotation ids [31]" in str(err.value)
    assert str(path) in str(err.value)


def _results(image: np.ndarray, boxes: list[list[float]]) -> dict:
    meta = {"scale_factor": (1.0, 1.0), "flip": False, "ori_shape": image.shape[:2]}
    return {"image": image, "gt_boxes": np.asarray(boxes, np.float32), "meta": meta}


def test_resize_scales_boxes_and_flip_mirrors_them() -> None:
    image = np.zeros((50, 100, 3), np.uint8)
    image[10:20, 5:25] = 255  # the box (5, 10, 25, 20)
    out = DetResize((200, 100))(_results(image, [[5, 10, 25, 20]]))
    assert out["image"].shape == (100, 200, 3)  # long side 200, short side 100: factor 2
    np.testing.assert_allclose(out["gt_boxes"], [[10, 20, 50, 40]])
    assert out["meta"]["scale_factor"] == (2.0, 2.0)
    ys, xs = np.nonzero(out["image"][..., 0] > 127)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (10, 50, 20, 40)  # pixels moved with the box

    flipped = DetRandomFlip(prob=1.0)(out)
    np.testing.assert_allclose(flipped["gt_boxes"], [[150, 20, 190, 40]])  # x -> 200 - x
    ys, xs = np.nonzero(flipped["image"][..., 0] > 127)
    assert (xs.min(), xs.max() + 1) == (150, 190)
    assert flipped["meta"]["flip"] is True
    padded = DetPad(32)(DetNormalize()(flipped))
    assert padded["image"].shape == (128, 224, 3) and padded["image"].dtype == np.float32
    with pytest.raises(FormatError, match="before DetNormalize"):
        DetResize((96, 96))(DetNormalize()(_results(image, [[0, 0, 1, 1]])))
    # Keep-ratio resize obeys the tighter of the two limits.
    assert DetResize((96, 96))(_results(image, [[0, 0, 1, 1]]))["image"].shape == (48, 96, 3)


def test_dataset_samples_collate_and_map_back(shapes: Path) -> None:
    pipeline = [DetResize((96, 80)), DetRandomFlip(1.0), DetNormalize(), DetPad(32)]
    ds = CocoDetection(root=str(shapes), ann_file="annotations/val.json", transforms=pipeline)
    raw = CocoDetection(root=str(shapes), ann_file="annotations/val.json")
    assert len(ds) == 8 and ds.class_names == ["rectangle", "ellipse", "triangle"]
    sample = ds[0]
    assert sample["image"].shape == (3, 96, 96) and tuple(sample["image_size"].tolist()) == (80, 80)
    original = raw[0]["gt_boxes"]
    back = boxes_to_original(sample["gt_boxes"], sample["meta"])
    torch.testing.assert_close(back, original, atol=1e-4, rtol=0)
    batch = CocoDetection.collate([ds[0], ds[1]])
    assert batch["images"].shape == (2, 3, 96, 96) and batch["image_sizes"].shape == (2, 2)
    assert len(batch["gt_boxes"]) == 2 and batch["metas"][1]["image_id"] == raw.image_ids[1]


def test_coco_metric_equals_pycocotools_on_the_same_files(shapes: Path, tmp_path: Path) -> None:
    ann_file = shapes / "annotations/val.json"
    rng = np.random.default_rng(0)
    gt = json.loads(ann_file.read_text())
    detections = []
    for ann in gt["annotations"]:  # jittered true positives, some with the wrong class
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 2.0, 4)
        cat = ann["category_id"] if rng.random() < 0.8 else 1 + ann["category_id"] % 3
        detections.append(
            {
                "image_id": ann["image_id"],
                "category_id": cat,
                "score": float(rng.random()),
                "bbox": [x + jitter[0], y + jitter[1], max(w + jitter[2], 1.0), max(h + jitter[3], 1.0)],
            }
        )
    for image in gt["images"]:  # false positives
        detections.append(
            {
                "image_id": image["id"],
                "category_id": int(rng.integers(1, 4)),
                "score": float(rng.random()) * 0.5,
                "bbox": [float(v) for v in rng.uniform(0, 30, 2)] + [12.0, 9.0],
            }
        )
    for d in detections:
        # Inside the 64-px image (the metric clips to it, pycocotools would not) and on a 1/8 px
        # grid, which the 100/64 resize and its inverse reproduce exactly in float32.
        x, y, w, h = (round(v * 8) / 8 for v in d["bbox"])
        x, y = min(max(x, 0.0), 50.0), min(max(y, 0.0), 50.0)
        d["bbox"] = [x, y, min(w, 64.0 - x), min(h, 64.0 - y)]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(detections))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(ann_file))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(str(det_file)), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    expected = evaluator.stats[:6]

    # The same detections through the metric, expressed in the network input's pixels of a
    # resized and flipped pipeline, in two "ranks" whose states are merged.
    ds = CocoDetection(
        root=str(shapes),
        ann_file="annotations/val.json",
        transforms=[DetResize((100, 100), keep_ratio=False), DetRandomFlip(1.0), DetPad(32)],
    )
    ranks = [CocoMetric(), CocoMetric()]
    for index in range(len(ds)):
        sample = ds[index]
        meta = sample["meta"]
        sx, sy = meta["scale_factor"]
        width = meta["img_shape"][1]
        mine = [d for d in detections if d["image_id"] == meta["image_id"]]
        boxes = torch.tensor(
            [
                [d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                for d in mine
            ],
            dtype=torch.float64,
        )
        boxes = boxes * torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        found = Detections2D(
            boxes.float(),
            torch.tensor([d["score"] for d in mine]),
            torch.tensor([ds.label_of[d["category_id"]] for d in mine]),
        )
        ranks[index % 2].update([found], CocoDetection.collate([sample]))
    merged = CocoMetric(prefix="bbox_")
    merged.merge([ranks[0].state(), ranks[1].state()])
    got = merged.compute()
    assert list(got) == ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_APs", "bbox_APm", "bbox_APl"]
    np.testing.assert_allclose(list(got.values()), expected, atol=1e-4)
    assert 0.2 < got["bbox_AP50"] < 1.0  # a non-trivial case: neither empty nor perfect


def test_kitti_converter_keeps_the_2d_boxes_and_drops_dontcare(tmp_path: Path) -> None:
    ann_file = kitti_to_coco(KITTI, tmp_path, ["000001", "000004"])
    data = load_coco_json(ann_file, tmp_path / "images")
    names = {c["id"]: c["name"] for c in data["categories"]}
    first = [(names[a["category_id"]], a["bbox"]) for a in data["annotations"] if a["image_id"] == 1]
    assert [n for n, _ in first] == ["Truck", "Car", "Cyclist"]  # 4 DontCare rows dropped
    np.testing.assert_allclose(first[0][1], [599.41, 156.40, 629.75 - 599.41, 189.25 - 156.40])
    assert len([a for a in data["annotations"] if a["image_id"] == 2]) == 2
    assert data["images"][0]["width"] == 1242 and data["images"][0]["height"] == 375


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "Bus 0 0 0 10 20 30 40 1.5 1.6 3.9 1 1.7 20 0.1",
            r"label_2/000001\.txt:2: unknown KITTI type 'Bus'",
        ),
        (
            "Car 0 0 0 30 20 10 40 1.5 1.6 3.9 1 1.7 20 0.1",
            r"label_2/000001\.txt:2: bbox .* must have x1 < x2",
        ),
        ("Car 0 0 0 10 20 30 40 1.5 1.6 3.9 1 1.7", r"label_2/000001\.txt:2: expected 15 or 16 fields"),
    ],
)
def test_kitti_converter_names_the_label_line_it_cannot_convert(
    tmp_path: Path, row: str, message: str
) -> None:
    root = tmp_path / "kitti"
    (root / "label_2").mkdir(parents=True)
    (root / "image_2").mkdir()
    (root / "image_2" / "000001.png").write_bytes((KITTI / "image_2" / "000001.png").read_bytes())
    good = "DontCare -1 -1 -10 5 5 9 9 -1 -1 -1 -1000 -1000 -1000 -10"
    (root / "label_2" / "000001.txt").write_text(f"{good}\n{row}\n")
    with pytest.raises(FormatError, match=message):
        kitti_to_coco(root, tmp_path / "out", ["000001"])


def test_a_relative_kitti_root_that_is_not_there_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the kitti-images config's paths are relative to the repository
    with pytest.raises(
        FormatError,
        match=rf"kitti_root tests/data/kitti/training is not a folder \(a relative path, resolved against {re.escape(str(tmp_path))}\)",
    ):
        kitti_to_coco("tests/data/kitti/training", tmp_path / "out", ["000001"])


def test_pc3d_det2d_commands_write_the_data_sets(tmp_path: Path) -> None:
    from pc3d.cli import main

    assert (
        main(
            [
                "det2d",
                "shapes",
                str(tmp_path / "s"),
                "--split",
                "val",
                "--num-images",
                "2",
                "--image-size",
                "48",
                "--min-size",
                "8",
                "--max-size",
                "20",
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "s/annotations/val.json").read_text())["images"]) == 2
    assert main(["det2d", "kitti", str(KITTI), str(tmp_path / "k"), "000004"]) == 0
    assert (
        len(load_coco_json(tmp_path / "k/annotations/train.json", tmp_path / "k/images")["annotations"]) == 2
    )


def _coco(
    root: Path, name: str, categories: list[dict], annotations: list[dict], size: tuple[int, int] = (40, 60)
) -> Path:
    """A COCO file over one blank image of ``size`` (h, w) named ``<name>.png``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(root / "images" / f"{name}.png")
    data = {
        "images": [{"id": 1, "file_name": f"{name}.png", "height": size[0], "width": size[1]}],
        "annotations": annotations,
        "categories": categories,
    }
    path = root / "annotations" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _perfect(dataset: CocoDetection) -> dict[str, float]:
    """CocoMetric on detections equal to the ground truth."""
    metric = CocoMetric()
    for index in range(len(dataset)):
        sample = dataset[index]
        found = Detections2D(sample["gt_boxes"], torch.ones(len(sample["gt_labels"])), sample["gt_labels"])
        metric.update([found], {"metas": [sample["meta"]]})
    return metric.compute()


def test_class_names_label_train_and_val_files_alike(tmp_path: Path) -> None:
    """A val file listing its categories in another order, with other ids and one missing, labels
    the same classes as the training file once both datasets get the config's class_names."""
    names = ["car", "person", "bike"]
    train = _coco(
        tmp_path,
        "train",
        [{"id": 1, "name": "car"}, {"id": 5, "name": "person"}, {"id": 90, "name": "bike"}],
        [{"id": 1, "image_id": 1, "category_id": 90, "bbox": [2, 2, 10, 10]}],
    )
    val = _coco(
        tmp_path,
        "val",
        [{"id": 3, "name": "bike"}, {"id": 7, "name": "car"}],
        [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 2, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [20, 5, 12, 8]},
        ],
    )
    train_set = CocoDetection(str(tmp_path), str(train), class_names=names)
    with pytest.warns(UserWarning, match=r"val\.json: no category named 'person'"):
        val_set = CocoDetection(str(tmp_path), str(val), class_names=names)
    assert train_set.class_names == val_set.class_names == names
    assert train_set[0]["gt_labels"].tolist() == [2]
    assert sorted(val_set[0]["gt_labels"].tolist()) == [0, 2]  # bike is label 2 in both
    assert _perfect(val_set)["AP"] == pytest.approx(1.0)
    # Without class_names each file labels its own sorted ids: bike is 2 in one, 0 in the other.
    assert CocoDetection(str(tmp_path), str(val))[0]["gt_labels"].tolist() == [0, 1]
    with pytest.warns(
        UserWarning, match=r"annotations of categories not in class_names are left out: car \(1\)"
    ):
        only_bikes = CocoDetection(str(tmp_path), str(val), class_names=["bike"])
    assert only_bikes[0]["gt_labels"].tolist() == [0] and len(only_bikes[0]["meta"]["annotations"]) == 1
    metric = CocoMetric()
    sample = only_bikes[0]
    wrong = Detections2D(sample["gt_boxes"], torch.ones(1), torch.tensor([3]))  # a 4-class head
    with pytest.raises(FormatError, match="the model predicts label 3 but the data set has 1 classes"):
        metric.update([wrong], {"metas": [sample["meta"]]})


@pytest.mark.parametrize(
    "categories, images, problem",
    [
        ([{"id": 1}], None, r"categories\[0\] needs an integer 'id' and a 'name'"),
        ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], None, "category id 1 appears twice"),
        ([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}], None, "category name 'a' is used by ids 1 and 2"),
        (
            [{"id": 1, "name": "a"}],
            [{"id": "1", "file_name": "x.png"}],
            r"images\[0\] \(x.png\): 'id' must be an integer",
        ),
    ],
)
def test_malformed_categories_and_ids_name_what_is_wrong(
    tmp_path: Path, categories: list[dict], images: list[dict] | None, problem: str
) -> None:
    data = {"images": images or [], "annotations": [], "categories": categories}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=rf"bad\.json: {problem}"):
        load_coco_json(path)


def test_boxes_past_the_image_are_clipped_or_refused(tmp_path: Path) -> None:
    cats = [{"id": 1, "name": "thing"}]
    partly = _coco(
        tmp_path, "partly", cats, [{"id": 4, "image_id": 1, "category_id": 1, "bbox": [50, 30, 30, 30]}]
    )
    with pytest.warns(
        UserWarning,
        match=r"1 boxes extend more than a pixel past their image and were clipped to it \(annotation ids \[4\]\)",
    ):
        dataset = CocoDetection(str(tmp_path), str(partly))
    assert dataset[0]["gt_boxes"].tolist() == [[50.0, 30.0, 60.0, 40.0]]
    assert _perfect(dataset)["AP"] == pytest.approx(1.0)  # the truth the metric uses is clipped too
    outside = _coco(
        tmp_path, "outside", cats, [{"id": 8, "image_id": 1, "category_id": 1, "bbox": [500, 5, 10, 10]}]
    )
    with pytest.raises(
        FormatError, match=r"annotation id 8: bbox \[500, 5, 10, 10\] lies outside its image \(60 x 40"
    ):
        CocoDetection(str(tmp_path), str(outside))


def test_an_image_of_another_size_than_its_json_says_is_refused(tmp_path: Path) -> None:
    path = _coco(tmp_path, "turned", [{"id": 1, "name": "thing"}], [], size=(40, 60))
    data = json.loads(path.read_text())
    data["images"][0].update(height=60, width=40)  # an EXIF-rotated photo's json, say
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="nothing to learn"):
        dataset = CocoDetection(str(tmp_path), str(path))
    with pytest.raises(FormatError, match=r"turned\.png .*the image is 60 x 40 but the json says 40 x 60"):
        dataset[0]


def test_sixteen_bit_images_keep_their_contrast(tmp_path: Path) -> None:
    path = _coco(
        tmp_path,
        "deep",
        [{"id": 1, "name": "thing"}],
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
    )
    ramp = (np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 27).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "images" / "deep.png")
    assert Image.open(tmp_path / "images" / "deep.png").mode.startswith("I")
    pixels = CocoDetection(str(tmp_path), str(path))[0]["image"]
    assert pixels.shape == (3, 40, 60)
    assert torch.equal(pixels[0], torch.from_numpy((ramp >> 8).astype(np.float32)))


def test_flipping_after_padding_is_refused(tmp_path: Path) -> None:
    path = _coco(
        tmp_path,
        "pad",
        [{"id": 1, "name": "thing"}],
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
    )
    dataset = CocoDetection(str(tmp_path), str(path), transforms=[DetPad(32), DetRandomFlip(1.0)])
    with pytest.raises(FormatError, match="DetRandomFlip after DetPad would mirror about the padded width"):
        dataset[0]


def test_a_split_without_annotations_says_so(tmp_path: Path) -> None:
    path = _coco(tmp_path, "empty", [{"id": 1, "name": "thing"}], [])
    with pytest.warns(
        UserWarning, match=r"empty\.json: no annotation of the classes \['thing'\]: nothing to learn"
    ):
        CocoDetection(str(tmp_path), str(path))
    with pytest.warns(UserWarning), pytest.raises(FormatError, match="filter_empty dropped every image"):
        CocoDetection(str(tmp_path), str(path), filter_empty=True)


def test_detect_images_gives_boxes_in_each_images_pixels(shapes: Path, tmp_path: Path) -> None:
    """The same detections as the evaluation path (data set sample, predict, back to the original)."""
    import pc3d.inference
    from pc3d.config import load_config
    from pc3d_det2d import detect_images, test_transforms

    overrides = [
        "model.head.score_threshold=0.0",
        "model.backbone.base_channels=16",
        "model.neck.in_channels=[32, 64, 128]",
    ]
    config = load_config("retinanet_r18-fpn_shapes", overrides)
    torch.manual_seed(0)
    model = pc3d.inference.load_model(config)
    transforms = test_transforms(config)
    assert [type(t).__name__ for t in transforms] == ["DetResize", "DetNormalize", "DetPad"]
    dataset = CocoDetection(str(shapes), "annotations/val.json", transforms=transforms)
    files = [shapes / "images" / dataset.coco.imgs[i]["file_name"] for i in dataset.image_ids[:3]]
    rgba = tmp_path / "rgba.png"  # another mode of the first image: the same pixels once read
    Image.open(files[0]).convert("RGBA").save(rgba)
    found = detect_images(model, [*files, rgba], transforms, batch_size=2)
    assert len(found) == 4 and len(found[0].boxes) > 0
    batch = CocoDetection.collate([dataset[i] for i in range(3)])
    with torch.no_grad():
        expected = model.predict(batch["images"], batch["image_sizes"])
    for got, want, meta in zip(found, expected, batch["metas"]):
        torch.testing.assert_close(got.boxes, boxes_to_original(want.boxes, meta))
        assert torch.equal(got.labels, want.labels)
    torch.testing.assert_close(found[3].boxes, found[0].boxes)
    with pytest.raises(FormatError, match="leave DetRandomFlip out"):
        detect_images(model, files, [DetRandomFlip(0.5), *transforms])
