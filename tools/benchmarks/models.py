"""`models` suite: PointPillars and SECOND on KITTI frame 000000 (115,384 points), stage by stage.

Each detector is built from its config under `configs/` when that exists (else from the published
hyper-parameters, written out below), with random weights (speed does not depend on them; the
head's class bias is set to 0 so post-processing sees real candidates, as in the MMDetection3D
reference). Rows, per detector:

- inference, per stage: voxelize / encoder (voxel encoder + middle encoder) / backbone+neck /
  head (its dense forward) / post-processing (decode, NMS) / head + post-processing as `predict`
  runs them (the inference copies compute box channels only at the candidates), and the whole
  `predict` of one frame; `optimize_for_inference()` (conv+BN folded, channels-last BEV maps,
  Winograd 3x3 convs from 128 channels, empty BEV tiles skipped, box channels at the candidates)
  against the plain model in the same process; on the CPU, the
  optimised backbone again without its empty-tile skipping and without its Winograd convs (a
  second table);
- training: samples per second of one optimiser step (forward, loss, backward, SGD) on a batch
  of two copies of the frame with three ground-truth boxes; the optimised column trains the model
  channels-last (``channels_last: true`` in a config, `pc3d.nn.fuse.to_channels_last`; folding is
  inference only), the plain column in the default layout.

- allocator: the whole `predict` again in a child process with glibc's default allocation policy
  (`PC3D_MALLOC=system`), against this process, which runs with `pc3d.allocator.keep_freed_memory()`
  like the `pc3d` command line (freed feature maps reused instead of mapped afresh every frame).

MMDetection3D's times on the same frame and machine kind (2 threads; its README) are printed
next to them. On the CPU torch gets 2 threads. Medians of `PC3D_BENCH_REPEATS` (7) runs after a
warm-up, 3 for calls over 2 s; `PC3D_BENCH_MODELS=PointPillars,SECOND` picks detectors and
`PC3D_BENCH_TRAIN=0` skips training.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from benchmarks.common import device_sync, median_time, torch_suite, torch_threads

ROOT = Path(__file__).resolve().parents[2]
FRAME = ROOT / "tests" / "data" / "kitti" / "training" / "velodyne" / "000000.bin"
REPEATS = int(os.environ.get("PC3D_BENCH_REPEATS", "7"))
# Comma-separated subset of CONFIGS (default: all); PC3D_BENCH_TRAIN=0 skips the training rows.
SELECTED = [m for m in os.environ.get("PC3D_BENCH_MODELS", "").split(",") if m]
TRAIN = os.environ.get("PC3D_BENCH_TRAIN", "1") != "0"
SLOW_S = 2.0  # a call slower than this (on its warm-up) is timed 3 times, not REPEATS
CONFIGS = {
    "PointPillars": ROOT / "configs" / "pointpillars" / "pointpillars_hv-secfpn_kitti-3d-3class.yaml",
    "SECOND": ROOT / "configs" / "second" / "second_hv-secfpn_kitti-3d-3class.yaml",
    "CenterPoint": ROOT / "configs" / "centerpoint" / "centerpoint_pillar-secfpn_kitti-3d-3class.yaml",
}
# MMDetection3D 1.4 on this machine kind (shared/reference/mmdet3d/README.md), ms per frame.
MMDET3D_MS = {
    ("PointPillars", "voxelize"): 3.0,
    ("PointPillars", "encoder"): 165.0,
    ("PointPillars", "backbone+neck"): 393.0,
    ("PointPillars", "head"): 32.0,
    ("PointPillars", "predict (whole frame)"): 630.0,
    ("SECOND", "voxelize"): 235.0,
    ("SECOND", "predict (whole frame)"): 1750.0,
}
CLASSES = ["Pedestrian", "Cyclist", "Car"]
ANCHOR_SIZES = [[0.8, 0.6, 1.73], [1.76, 0.6, 1.73], [3.9, 1.6, 1.56]]
TEST_CFG = {"nms_pre": 100, "score_thr": 0.0, "nms_thr": 0.01, "max_num": 50}


def anchor_ranges(y: float, x: float) -> list[list[float]]:
    """MMDetection3D's per-class anchor ranges for a KITTI grid reaching `x` forward and `y` sideways."""
    return [[0, -y, z, x, y, z] for z in (-0.6, -0.6, -1.78)]


def pointpillars_in_code() -> nn.Module:
    """PointPillars (MMDetection3D `pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class`)."""
    from pc3d.nn import SECONDFPN, PillarFeatureNet, PointPillarsScatter, SECONDBackbone
    from pc3d_det3d.anchor_head import Anchor3DHead
    from pc3d_det3d.voxelnet import VoxelDetector

    rng = (0.0, -39.68, -3.0, 69.12, 39.68, 1.0)
    size = (0.16, 0.16, 4.0)
    return VoxelDetector(
        voxel={
            "voxel_size": size,
            "point_cloud_range": rng,
            "max_num_points": 32,
            "max_voxels": (16000, 40000),
        },
        voxel_encoder=PillarFeatureNet(4, (64,), False, voxel_size=size, point_cloud_range=rng),
        middle_encoder=PointPillarsScatter(64, (496, 432)),
        backbone=SECONDBackbone(64, (64, 128, 256), (3, 5, 5), (2, 2, 2)),
        neck=SECONDFPN((64, 128, 256), (128, 128, 128), (1, 2, 4)),
        bbox_head=Anchor3DHead(
            3,
            384,
            {
                "ranges": anchor_ranges(39.68, 69.12),
                "sizes": ANCHOR_SIZES,
                "rotations": [0, 1.57],
                "align_corner": True,
            },
            test_cfg=TEST_CFG,
        ),
        class_names=CLASSES,
    )


def second_in_code() -> nn.Module:
    """SECOND (MMDetection3D `second_hv_secfpn_8xb6-80e_kitti-3d-3class`)."""
    from pc3d.nn import SECONDFPN, HardSimpleVFE, SECONDBackbone, SparseEncoder
    from pc3d_det3d.anchor_head import Anchor3DHead
    from pc3d_det3d.voxelnet import VoxelDetector

    return VoxelDetector(
        voxel={
            "voxel_size": (0.05, 0.05, 0.1),
            "point_cloud_range": (0.0, -40.0, -3.0, 70.4, 40.0, 1.0),
            "max_num_points": 5,
            "max_voxels": (16000, 40000),
        },
        voxel_encoder=HardSimpleVFE(4),
        middle_encoder=SparseEncoder(4, (41, 1600, 1408)),
        backbone=SECONDBackbone(256, (128, 256), (5, 5), (1, 2)),
        neck=SECONDFPN((128, 256), (256, 256), (1, 2)),
        bbox_head=Anchor3DHead(
            3,
            512,
            {"ranges": anchor_ranges(40.0, 70.4), "sizes": ANCHOR_SIZES, "rotations": [0, 1.57]},
            test_cfg=TEST_CFG,
        ),
        class_names=CLASSES,
    )


def build_detector(name: str) -> tuple[nn.Module, str] | None:
    """The detector and where it came from (`config: <path>` or `code`); None when unavailable."""
    path = CONFIGS[name]
    if path.is_file():
        from pc3d.config import build, load_config

        return build(load_config(path).node("model"), kind="model"), f"config {path.relative_to(ROOT)}"
    if name == "PointPillars":
        return pointpillars_in_code(), "code (published hyper-parameters)"
    if name == "SECOND":
        return second_in_code(), "code (published hyper-parameters)"
    return None


def random_weights(model: nn.Module) -> nn.Module:
    """Seeded weights and non-trivial batch-norm statistics, so folding has something to fold."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    head = getattr(model, "bbox_head", None)
    if head is not None and hasattr(head, "conv_cls"):
        nn.init.zeros_(head.conv_cls.bias)
    return model


def stage_functions(model: Any, points: Tensor) -> dict[str, Callable[[], Any]]:
    """One zero-argument call per stage, each on the cached output of the stage before."""
    clouds = [points]
    voxels, num_points, coords = model.voxelize(clouds)
    features = model.voxel_encoder(voxels, num_points, coords)
    bev = model.middle_encoder(features, coords, 1)
    neck = model.neck(model.backbone(bev))
    output = model.bbox_head(neck)
    return {
        "voxelize": lambda: model.voxelize(clouds),
        "encoder": lambda: model.middle_encoder(model.voxel_encoder(voxels, num_points, coords), coords, 1),
        "backbone+neck": lambda: model.neck(model.backbone(bev)),
        "head": lambda: model.bbox_head(neck),
        "post-processing": lambda: model.bbox_head.predict(output),
        # What predict runs after the neck: the heads' inference copies compute their box
        # channels only at the candidates (so "head" above is the dense forward, not this).
        "head + post-processing, as predict runs them": lambda: model.bbox_head.predict_features(neck),
        "predict (whole frame)": lambda: model.predict(clouds),
    }


def training_step(model: Any, points: Tensor) -> Callable[[], None]:
    """One SGD step on a batch of two copies of the frame with three boxes (car, pedestrian, cyclist)."""
    boxes = torch.tensor(
        [
            [10.0, 2.0, -1.7, 3.9, 1.6, 1.56, 0.3],
            [8.0, -3.0, -1.2, 0.8, 0.6, 1.73, 1.2],
            [15.0, 5.0, -1.3, 1.76, 0.6, 1.73, -0.4],
        ]
    )
    labels = torch.tensor([2, 0, 1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        losses = model.loss([points, points], [boxes, boxes], [labels, labels])
        losses["loss"].backward()
        optimizer.step()

    return step


@torch_suite(threads=2)
def run(dev: torch.device) -> list[dict]:
    from pc3d.allocator import keep_freed_memory
    from pc3d.nn.fuse import to_channels_last

    tuned = keep_freed_memory()
    sync = device_sync(dev)
    points = load_frame(dev)
    rows: list[dict] = []
    for name in SELECTED or list(CONFIGS):
        models = plain_and_fast(name, dev, points)
        if models is None:
            continue
        plain, fast, source = models
        with torch.no_grad():
            ours, peer = stage_functions(fast, points), stage_functions(plain, points)
            for stage in ours:
                rows.append(
                    model_row(name, stage, timed(ours[stage], sync), timed(peer[stage], sync), source)
                )
            if dev.type == "cpu":
                rows += ablation_rows(name, fast, points, source)
        if TRAIN:
            t_plain = timed(training_step(copy.deepcopy(plain).train(), points), sync)
            nhwc = to_channels_last(copy.deepcopy(plain)).train()
            t_nhwc = timed(training_step(nhwc, points), sync)
            rows.append(model_row(name, "training (batch 2)", t_nhwc, t_plain, source, per_sample=2))
        if tuned:
            fast_s, plain_s = predict_times_default_allocator(name, dev)
            rows.append(model_row(name, "predict, glibc default allocator", fast_s, plain_s, source))
    return rows


def ablation_rows(name: str, fast: Any, points: Tensor, source: str) -> list[dict]:
    """The optimised backbone with and without each of its CPU steps (empty tiles, Winograd convs)."""
    from pc3d.nn.winograd import WinogradConv2d

    voxels, num_points, coords = fast.voxelize([points])
    bev = fast.middle_encoder(fast.voxel_encoder(voxels, num_points, coords), coords, 1)
    backbone = fast.backbone
    rows = []
    if isinstance(getattr(backbone, "skip_empty", None), bool):
        dense = copy.deepcopy(backbone)
        dense.skip_empty = False
        with_it, without = timed(lambda: backbone(bev), None), timed(lambda: dense(bev), None)
        rows.append(
            model_row(name, "backbone: empty tiles skipped", with_it, without, source) | {"ablation": True}
        )
    if any(isinstance(m, WinogradConv2d) for m in backbone.modules()):
        direct = copy.deepcopy(backbone)
        for parent in list(direct.modules()):
            for child_name, child in list(parent.named_children()):
                if isinstance(child, WinogradConv2d):
                    conv = nn.Conv2d(
                        child.in_channels, child.out_channels, 3, padding=1, bias=child.bias is not None
                    )
                    conv.weight, conv.bias = child.weight, child.bias
                    setattr(parent, child_name, conv.eval())
        with_it, without = timed(lambda: backbone(bev), None), timed(lambda: direct(bev), None)
        rows.append(
            model_row(name, "backbone: Winograd 3x3 convs", with_it, without, source) | {"ablation": True}
        )
    return rows


def load_frame(dev: torch.device) -> Tensor:
    return torch.from_numpy(np.fromfile(FRAME, dtype=np.float32).reshape(-1, 4)).to(dev)


def plain_and_fast(name: str, dev: torch.device, points: Tensor) -> tuple[Any, Any, str] | None:
    """The plain detector (random weights, eval mode), its optimised copy (checked), and its source."""
    import pc3d_det3d  # noqa: F401  (registers the detectors)

    built = build_detector(name)
    if built is None:
        return None
    plain, source = built
    plain = random_weights(plain).to(dev).eval()
    fast = plain.optimize_for_inference()
    check_same_detections(plain, fast, points)
    return plain, fast, source


def predict_times(name: str, device: str) -> tuple[float, float]:
    """Seconds of one whole `predict` (optimised, plain) in this process, as the main rows time it."""
    dev = torch.device(device)
    points = load_frame(dev)
    models = plain_and_fast(name, dev, points)
    assert models is not None
    plain, fast, _ = models
    sync = device_sync(dev)
    with torch_threads(2, device), torch.no_grad():
        return timed(lambda: fast.predict([points]), sync), timed(lambda: plain.predict([points]), sync)


def predict_times_default_allocator(name: str, dev: torch.device) -> tuple[float, float]:
    """`predict_times` in a child process that keeps glibc's default policy (`PC3D_MALLOC=system`)."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from benchmarks import models; print(json.dumps(models.predict_times(sys.argv[2], sys.argv[3])))"
    )
    tools = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code, tools, name, str(dev)],
        env={**os.environ, "PC3D_MALLOC": "system"},
        capture_output=True,
        text=True,
        check=True,
    )
    fast_s, plain_s = json.loads(done.stdout.strip().splitlines()[-1])
    return float(fast_s), float(plain_s)


def timed(fn: Callable[[], object], sync: Callable[[], None] | None) -> float:
    """Median seconds of `fn` after a warm-up: REPEATS runs, at most 3 when the warm-up took over SLOW_S."""
    start = time.perf_counter()
    fn()
    repeats = REPEATS if time.perf_counter() - start < SLOW_S else min(3, REPEATS)
    return median_time(fn, repeats=repeats, warmup=0, sync=sync)


def check_same_detections(plain: Any, fast: Any, points: Tensor) -> None:
    """The optimised model's raw outputs equal the plain one's (to 1e-4 relative to their scale)."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convs round differently per layout: compare in float32
    try:
        with torch.no_grad():
            a, b = plain([points]), fast([points])
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    for x, y in zip(tree_leaves(a), tree_leaves(b), strict=True):
        torch.testing.assert_close(
            y.contiguous(), x.contiguous(), atol=1e-4 * max(1.0, float(x.abs().max())), rtol=1e-4
        )


def model_row(name: str, stage: str, fast: float, plain: float, source: str, per_sample: int = 0) -> dict:
    return {
        "model": name,
        "stage": stage,
        "fast_ms": fast * 1e3,
        "plain_ms": plain * 1e3,
        "source": source,
        "mmdet3d_ms": MMDET3D_MS.get((name, stage), math.nan),
        "per_sample": per_sample,
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}\n")
    for source in dict.fromkeys(f"{r['model']}: {r['source']}" for r in rows):
        print(f"- {source}")
    print(
        "\n| model | stage | pc3d optimised (ms) | pc3d plain (ms) | plain / optimised | MMDetection3D (ms) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        if r.get("ablation"):
            continue
        ref = "" if math.isnan(r["mmdet3d_ms"]) else f"{r['mmdet3d_ms']:.0f}"
        if r["per_sample"]:
            fast, plain = (r["per_sample"] / (r[key] / 1e3) for key in ("fast_ms", "plain_ms"))
            print(
                f"| {r['model']} | {r['stage']} | {r['fast_ms']:.0f} ({fast:.2f} samples/s) | "
                f"{r['plain_ms']:.0f} ({plain:.2f} samples/s) | {r['plain_ms'] / r['fast_ms']:.2f}x | |"
            )
            continue
        print(
            f"| {r['model']} | {r['stage']} | {r['fast_ms']:.1f} | {r['plain_ms']:.1f} | {r['plain_ms'] / r['fast_ms']:.2f}x | {ref} |"
        )
    ablations = [r for r in rows if r.get("ablation")]
    if ablations:
        print("\nWhat each CPU step of the optimised path gains (optimised backbone with and without it):\n")
        print("| model | step | with (ms) | without (ms) | without / with |")
        print("| --- | --- | ---: | ---: | ---: |")
        for r in ablations:
            print(
                f"| {r['model']} | {r['stage'].removeprefix('backbone: ')} | {r['fast_ms']:.1f} | "
                f"{r['plain_ms']:.1f} | {r['plain_ms'] / r['fast_ms']:.2f}x |"
            )
