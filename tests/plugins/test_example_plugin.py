"""The example third-party plugin, end to end: pip-installed (into a temporary target),
discovered through its entry point, listed, named in a config, built, trained for a few steps in
plain torch, and trained with `python -m pc3d train` on its config (data, optimizer and schedule
inherited from det3d's runnable config: the KITTI frames shipped in tests/data).

The install goes from the example's own folder and must leave no build output there. Each check
runs in a subprocess with the install folder on PYTHONPATH, so discovery goes through
real installed metadata and the venv stays untouched for the other tests.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from pc3d.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pc3d-example-head"
CONFIG = "pillar-center-tiny-examplehead_kitti-3class.yaml"


def source_files() -> set[Path]:
    """Every file under the example's folder (caches of the interpreter aside)."""
    return {p.relative_to(EXAMPLE) for p in EXAMPLE.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("example-plugin") / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--disable-pip-version-check",
        "--target",
        str(site),
        str(EXAMPLE),
    ]
    if importlib.util.find_spec("hatchling") is not None:
        command[4:4] = ["--no-build-isolation", "--no-index"]  # offline with the installed backend
    before = source_files()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # Installing from the source folder leaves nothing behind in it (no build/, no *.egg-info).
    assert source_files() == before, sorted(map(str, source_files() - before))
    assert (site / "pc3d_example_head" / "configs" / CONFIG).is_file()
    return site


def test_install_leaves_the_source_folder_clean(example_site):
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", str(EXAMPLE)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if status.returncode != 0:
        pytest.skip("not a git checkout")
    untracked = [
        line for line in status.stdout.splitlines() if line[:2] in ("??", "!!") and "__pycache__" not in line
    ]
    assert untracked == []


def run_python(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PC3D_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


# One interpreter (one torch import) for every check: the `pc3d` CLI entry point for
# `pc3d plugins --json` and `pc3d config show CONFIG --check`, then build and train.
DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    import torch
    from pc3d.cli import main
    from pc3d.config import build, load_config

    def cli(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
        return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}

    report = {"plugins": cli("plugins", "--json"), "show": cli("config", "show", sys.argv[1], "--check")}

    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = load_config(sys.argv[1], [
        "model.voxel_encoder.point_cloud_range=[0, -8, -3, 16, 8, 1]",
        "model.voxel_encoder.pillar_size=[0.5, 0.5]",
        "model.backbone.strides=[2, 1]",
        "model.backbone.layers_per_stage=1",
        "model.head.hidden_channels=16",
    ])
    model = build(config.node("model"), kind="model")
    generator = torch.Generator().manual_seed(0)
    points = [torch.rand(500, 4, generator=generator) * torch.tensor([16.0, 16.0, 2.0, 1.0])
              - torch.tensor([0.0, 8.0, 2.0, 0.0]) for _ in range(2)]
    boxes = [torch.tensor([[5.0, 2.0, -1.7, 4.0, 1.8, 1.5, 0.3]]),
             torch.tensor([[9.0, -3.0, -1.7, 0.8, 0.6, 1.8, 0.0]])]
    labels = [torch.tensor([0]), torch.tensor([1])]
    output = model(points)
    before = [p.detach().clone() for p in model.head.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        loss = model.loss(points, boxes, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    report["train"] = {
        "head": type(model.head).__name__,
        "head_file": sys.modules[type(model.head).__module__].__file__,
        "heatmap": list(output.heatmap.shape),
        "regression": list(output.regression.shape),
        "losses": losses,
        "head_params_changed": all(
            not torch.equal(b, a) for b, a in zip(before, model.head.parameters())
        ),
    }
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report(example_site: Path) -> dict[str, Any]:
    result = run_python(example_site, "-c", DRIVER, CONFIG)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pc3d_plugins_lists_the_installed_example(report, example_site):
    assert report["plugins"]["status"] == 0, report["plugins"]["stderr"]
    listing = {p["distribution"]: p for p in json.loads(report["plugins"]["stdout"])["plugins"]}
    example = listing["pc3d-example-head"]
    assert example["version"] == "0.1.0"
    assert example["status"] == "loaded"
    assert example["registered"] == {"head": ["ExampleHead"]}
    assert example["config_dirs"] == [str(example_site / "pc3d_example_head" / "configs")]
    assert listing["pc3d-det3d"]["status"] == "loaded"


def test_config_naming_the_head_resolves_through_plugin_config_dirs(report):
    assert report["show"]["status"] == 0, report["show"]["stderr"]
    resolved = yaml.safe_load(report["show"]["stdout"])
    # _replace_ dropped CenterHead's keys (head_channels) instead of merging into them.
    assert resolved["model"]["head"] == {
        "type": "ExampleHead",
        "in_channels": 64,
        "num_classes": 3,
        "hidden_channels": 32,
    }
    assert resolved["model"]["backbone"]["type"] == "BEVBackbone"  # from det3d's base config


def test_model_with_the_example_head_builds_and_trains(report, example_site):
    train = report["train"]
    assert train["head"] == "ExampleHead"
    assert Path(train["head_file"]).is_relative_to(example_site)
    assert train["heatmap"] == [2, 3, 16, 16] and train["regression"] == [2, 8, 16, 16]
    assert train["head_params_changed"]
    losses = train["losses"]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


@pytest.fixture(scope="module")
def trained(
    example_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`python -m pc3d train CONFIG` in a fresh interpreter (cwd: the repository, where the
    config's relative KITTI root points), shortened to three iterations on fewer points."""
    work = tmp_path_factory.mktemp("example-train") / "work"
    shorten = [
        "schedule.epochs=null",
        "schedule.iterations=3",
        "runtime.num_threads=1",
        "data.train.dataset.max_points=2000",
        "data.val.dataset.max_points=2000",
    ]
    result = run_python(
        example_site, "-m", "pc3d", "train", CONFIG, "--work-dir", str(work), "--set", *shorten
    )
    return work, result


def test_pc3d_train_trains_the_example_head(trained):
    work, result = trained
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    resolved = yaml.safe_load((work / "config.yaml").read_text())
    assert resolved["model"]["head"]["type"] == "ExampleHead"
    assert resolved["data"]["train"]["dataset"]["type"] == "KittiDataset"  # inherited from det3d
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert train and train[-1]["iteration"] == 3
    assert all(math.isfinite(r[k]) for r in train for k in ("loss", "loss_heatmap", "loss_regression"))
    assert [r["kind"] for r in records][-1] == "end"
    checkpoint = work / (work / "last_checkpoint").read_text().strip()
    assert checkpoint.name == "iter_3.pth" and checkpoint.is_file()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    head = {k for k in state if k.startswith("head.")}
    # ExampleHead's own layout (a heatmap branch and four box branches), not CenterHead's.
    assert "head.heatmap.0.weight" in head and "head.boxes.3.2.weight" in head, sorted(head)
    assert state["head.boxes.0.0.weight"].shape == (32, 64, 3, 3)  # hidden_channels x in_channels


def test_without_the_install_the_head_is_unknown(capsys, monkeypatch):
    # This interpreter never had the example on its path: its config names an unknown head.
    for var in ("PC3D_DISABLE_PLUGIN_AUTOLOAD", "PC3D_PLUGINS", "PC3D_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    config = EXAMPLE / "pc3d_example_head" / "configs" / CONFIG
    assert main(["config", "show", str(config), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"model.head.type (from {config}:9)" in err
    assert "unknown head 'ExampleHead'. Registered heads: Anchor3DHead, CenterHead, " in err
