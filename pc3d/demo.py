"""The main job (``make demo`` / ``pc3d demo``): train a 3D detector on synthetic LiDAR scenes,
evaluate it with the KITTI protocol and show what it sees. No download, CPU only, minutes.

1. ``pc3d data synth``: synthetic street scenes in the KITTI layout (``work_dirs/demo/synth``;
   ImageSets ``train``/``val``), generated once and reused;
2. ``pc3d data gt-database``: the training split's objects, for GT sampling;
3. ``pc3d train``: the small PointPillars of
   ``configs/pointpillars/pointpillars-small_hv-secfpn_synthetic-3d-3class.yaml``;
4. KITTI evaluation of the validation split: the familiar table, ``metrics.json`` (the
   ``pc3d kitti-eval --json`` schema) and ``pr_curves.png``;
5. renders of predictions against ground truth (bird's-eye and perspective) for a few
   validation scenes and for a real KITTI frame shipped with pc3d;
6. ``model.pth`` with its resolved ``config.yaml`` (``pc3d infer work_dirs/demo/config.yaml
   work_dirs/demo/model.pth CLOUD ...`` runs it on new scenes), ``loss.png`` and ``report.md``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["DEMO_CONFIG", "DemoSettings", "run_demo"]

DEMO_CONFIG = "pointpillars-small_hv-secfpn_synthetic-3d-3class"


@dataclass
class DemoSettings:
    """What the demo does.

    Attributes:
        work_dir: everything is written here.
        scenes: synthetic scenes generated (a fifth of them are the validation split).
        seed: seed of the scenes and of training.
        overrides: extra ``--set`` overrides of the config (e.g. ``schedule.epochs=2``).
        renders: validation scenes rendered.
        workers: processes generating scenes.
    """

    work_dir: Path = Path("work_dirs/demo")
    scenes: int = 300
    seed: int = 0
    overrides: Sequence[str] = field(default_factory=list)
    renders: int = 3
    workers: int = 2


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.monotonic()


def _synthetic_data(settings: DemoSettings) -> Path:
    from pc3d.data.synthetic import write_synthetic_kitti

    root = settings.work_dir / "synth"
    listed = root / "ImageSets" / "trainval.txt"
    if listed.is_file() and len(listed.read_text().split()) == settings.scenes:
        print(f"reusing {settings.scenes} synthetic scenes in {root}")
        return root
    if root.exists():
        shutil.rmtree(root)
    write_synthetic_kitti(
        root, scenes=settings.scenes, seed=settings.seed, progress=True, workers=settings.workers
    )
    return root


def _load_config(settings: DemoSettings, data_root: Path) -> Any:
    from pc3d.config import load_config

    return load_config(
        DEMO_CONFIG, [f"data_root={data_root}", f"runtime.seed={settings.seed}", *settings.overrides]
    )


def _gt_database(config: Any) -> Path:
    from pc3d.data.gt_database import GTDatabase, gt_database_from_config

    steps = [s for s in config.get("data.train.dataset.pipeline") if s.get("type") == "ObjectSample"]
    path = Path(steps[0]["db_path"])
    try:
        GTDatabase.load(path, config.get("class_names"), config.get("point_cloud_range"))
        print(f"reusing the GT database {path}")
        return path
    except (FileNotFoundError, ValueError):
        return gt_database_from_config(config, progress=True)


def _train(config: Any, run_dir: Path) -> None:
    from pc3d.engine import RunOptions, run_train

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_train(config, RunOptions(work_dir=run_dir, device="cpu"))


def _evaluate(model: torch.nn.Module, config: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """KITTI evaluation of the validation split; also returns (sample, detections) pairs."""
    from pc3d.config import build
    from pc3d.engine.logging import terminal_progress
    from pc3d.evaluation.kitti import KittiMetric

    dataset = build(config.node("data.val.dataset"), kind="dataset")
    metric = KittiMetric(classes=config.get("class_names"))
    kept: list[tuple[Any, Any]] = []
    with torch.no_grad():
        for index in terminal_progress(range(len(dataset)), "evaluate", unit="frame"):
            item = dataset[index]
            detections = model.predict([item["points"]])  # type: ignore[operator]
            metric.update(detections, {"kitti_labels": [item["kitti_labels"]], "calib": [item["calib"]]})
            kept.append((item, detections[0]))
    return metric.result(), kept


def _renders(
    model: torch.nn.Module, class_names: list[str], pairs: list[tuple[Any, Any]], out: Path, count: int
) -> list[Path]:
    from pc3d.data_files import DEFAULT_DEMO_FRAME, kitti_sample_root
    from pc3d.io.kitti import load_kitti_frame
    from pc3d.structures import LiDARPoints
    from pc3d.vis.renderer import render

    written = []
    # The validation scenes with the most objects show the most.
    busiest = sorted(pairs, key=lambda pair: -len(pair[0]["gt_boxes"]))[:count]
    for item, dets in busiest:
        for view in ("bev", "orbit"):
            path = out / f"val_{item['frame_id']}_{view}.png"
            render(
                item["points"],
                _box_set(item["gt_boxes"], item["gt_labels"], class_names),
                _box_set(dets.boxes, dets.labels, class_names, dets.scores),
                out=path,
                view=view,
                class_names=class_names,
                labels=view == "bev",
                score_thr=0.3,
            )
            written.append(path)
    frame = load_kitti_frame(kitti_sample_root(), DEFAULT_DEMO_FRAME)
    points = LiDARPoints(torch.from_numpy(frame.points.array[:, :4].copy()), points_dim=4)
    with torch.no_grad():
        dets = model.predict([points])[0]  # type: ignore[operator]
    assert frame.labels is not None
    objects = frame.labels.objects()
    keep = [str(t) in class_names for t in objects.types]
    gt = frame.labels.to_lidar_boxes(frame.calib)[torch.tensor(keep, dtype=torch.bool)]
    gt_labels = torch.tensor(
        [class_names.index(str(t)) for t, k in zip(objects.types, keep) if k], dtype=torch.long
    )
    path = out / f"kitti_{DEFAULT_DEMO_FRAME}_bev.png"
    render(
        points,
        _box_set(gt, gt_labels, class_names),
        _box_set(dets.boxes, dets.labels, class_names, dets.scores),
        out=path,
        view="bev",
        class_names=class_names,
        labels=True,
        score_thr=0.3,
        forward_only=True,
    )
    written.append(path)
    return written


def _box_set(
    boxes: Any, labels: torch.Tensor, class_names: list[str], scores: torch.Tensor | None = None
) -> Any:
    from pc3d.vis.scene import BoxSet

    names = [class_names[int(i)] for i in labels.tolist()]
    tensor = boxes.tensor if hasattr(boxes, "tensor") else boxes
    return BoxSet(
        tensor.detach().cpu().numpy().astype("float64"),
        labels=names,
        scores=None if scores is None else scores.detach().cpu().numpy().astype("float64"),
    )


def _report(settings: DemoSettings, result: Any, times: dict[str, float], images: list[Path]) -> str:
    ap = {c: result.ap40[i, 0, 1, 1] for i, c in enumerate(result.classes)}  # BEV, moderate, strict
    lines = [
        "# pc3d demo report",
        "",
        f"PointPillars (small) trained on {settings.scenes} synthetic LiDAR scenes "
        f"(seed {settings.seed}; config `{DEMO_CONFIG}`), evaluated on the validation split with "
        "the KITTI protocol (AP40, strict overlaps: Car 0.7, Pedestrian and Cyclist 0.5).",
        "",
        "| class | BEV AP40 moderate |",
        "|---|---|",
        *[f"| {c} | {v:.1f} |" for c, v in ap.items()],
        "",
        "```",
        result.table(),
        "```",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in times.items()],
        "",
        "Files: `model.pth` + `config.yaml` (run them with `pc3d infer config.yaml model.pth CLOUD`), "
        "`metrics.json` (the `pc3d kitti-eval --json` schema), `loss.png` (training curves), "
        "`pr_curves.png` (precision-recall per class), renders (green-yellow-blue: ground truth; "
        "red-magenta-orange: predictions):",
        "",
        *[f"![{p.stem}]({p.name})" for p in images],
        "",
    ]
    return "\n".join(lines)


def run_demo(settings: DemoSettings | None = None) -> dict[str, float]:
    """Run the main job (see the module docstring) and return the Car/Pedestrian/Cyclist BEV
    AP40 (moderate) with the wall times of the steps."""
    from pc3d.config import dump_config
    from pc3d.inference import load_model
    from pc3d.io.atomic import atomic_write_text
    from pc3d.vis.plots import plot_pr_curves, plot_training_curves

    settings = settings or DemoSettings()
    out = settings.work_dir
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start = _step("1/5 synthetic LiDAR scenes (pc3d data synth)")
    data_root = _synthetic_data(settings)
    config = _load_config(settings, data_root)
    times["data"] = time.monotonic() - start
    start = _step("2/5 GT database (pc3d data gt-database)")
    _gt_database(config)
    times["gt database"] = time.monotonic() - start
    start = _step(f"3/5 training {DEMO_CONFIG} on the CPU (pc3d train)")
    run_dir = out / "run"
    _train(config, run_dir)
    times["training"] = time.monotonic() - start
    checkpoint = max(run_dir.glob("epoch_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
    shutil.copyfile(checkpoint, out / "model.pth")
    dump_config(config, out)
    start = _step("4/5 KITTI evaluation of the validation split")
    model = load_model(config, out / "model.pth")
    result, pairs = _evaluate(model, config)
    print(result.table())
    result.write_json(out / "metrics.json")
    plot_pr_curves(result, out / "pr_curves.png")
    names = list(config.get("class_names"))
    plot_training_curves(
        run_dir, out / "loss.png", metrics=[f"KITTI/{c}_BEV_AP40_moderate_strict" for c in names]
    )
    times["evaluation"] = time.monotonic() - start
    start = _step("5/5 renders")
    images = _renders(model, list(config.get("class_names")), pairs, out, settings.renders)
    times["renders"] = time.monotonic() - start
    atomic_write_text(
        out / "report.md",
        _report(settings, result, times, [out / "loss.png", out / "pr_curves.png", *images]),
    )
    summary = {f"{c}_BEV_AP40_moderate": float(result.ap40[i, 0, 1, 1]) for i, c in enumerate(result.classes)}
    print(
        f"\nwrote {out}/: model.pth, config.yaml, metrics.json, loss.png, pr_curves.png, {len(images)} renders, report.md"
    )
    print("total " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return {**summary, **{f"seconds_{k.replace(' ', '_')}": v for k, v in times.items()}}
