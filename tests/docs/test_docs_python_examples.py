"""Every ```python example of the README and docs/ runs as written, in order, file by file.

The examples read the KITTI frames pc3d ships (``tests/data/kitti``) and a few files a user would
have: a trained checkpoint (here random weights of the same model), an MMDetection3D checkpoint
(the same weights with MMDetection3D's meta), and KITTI result files. They run in a scratch folder
in which ``tests``, ``configs`` and ``kitti`` lead to the repository's, so what they write stays
there. Each file's examples share one namespace, as a reader's session would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from unittest import mock

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"```python\n(.*?)```", re.S)
DOCUMENTS = [
    p for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))] if FENCE.search(p.read_text())
]
CLASSES = ["Pedestrian", "Cyclist", "Car"]


def _mmdet3d_checkpoint(config: str, path: Path) -> dict[str, torch.Tensor]:
    """Random weights of a zoo model, saved with MMDetection3D's meta (its key names are pc3d's)."""
    import pc3d.inference

    torch.manual_seed(0)
    state = pc3d.inference.load_model(config, optimize=False).state_dict()
    meta = {"mmdet3d_version": "1.4.0", "dataset_meta": {"classes": CLASSES}}
    torch.save({"meta": meta, "state_dict": state}, path)
    return state


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name in ("tests", "configs"):
        (folder / name).symlink_to(REPO / name)
    (folder / "kitti").symlink_to(REPO / "tests" / "data" / "kitti")
    state = _mmdet3d_checkpoint(
        "pointpillars_hv-secfpn_kitti-3d-3class", folder / "pointpillars_kitti-3class.pth"
    )
    (folder / "checkpoints").mkdir()
    torch.save(state, folder / "checkpoints" / "pointpillars_kitti.pth")  # a plain state dict
    _mmdet3d_checkpoint("second_hv-secfpn_kitti-3d-3class", folder / "second_kitti-3class.pth")
    # KITTI results as `pc3d infer --format kitti` writes them: the labels, each with a score.
    results = folder / "results" / "data"
    results.mkdir(parents=True)
    for label in sorted((REPO / "tests" / "data" / "kitti" / "training" / "label_2").glob("*.txt")):
        lines = [line.split() for line in label.read_text().splitlines() if line.strip()]
        kept = [" ".join([*fields[:15], "0.9"]) for fields in lines if fields[0] != "DontCare"]
        (results / label.name).write_text("".join(line + "\n" for line in kept))
    return folder


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_python_examples_run_as_written(
    document: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    text = document.read_text()
    if "pc3d.vis" in text:
        request.getfixturevalue("renderer")  # skips, saying why, where nothing can render
    folder = workspace / document.stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name in ("tests", "configs", "kitti", "checkpoints", "results"):
        (folder / name).symlink_to(workspace / name)
    for checkpoint in workspace.glob("*.pth"):
        (folder / checkpoint.name).symlink_to(checkpoint)
    monkeypatch.chdir(folder)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    shown: list[object] = []
    import pc3d.vis

    with mock.patch.object(pc3d.vis, "show", lambda *args, **kwargs: shown.append(args)):  # no window
        for index, block in enumerate(FENCE.findall(text)):
            exec(compile(block, f"{document.name} example {index + 1}", "exec"), namespace)
    assert len(namespace) > 1  # the examples defined something
    if "pc3d.vis.show(" in text:
        assert shown, "the example's pc3d.vis.show call did not run"
