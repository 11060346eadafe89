"""`pc3d.ops` is the lower layer: it never imports `pc3d.structures`, not even lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pc3d.ops

OPS = Path(pc3d.ops.__file__).resolve().parent


def test_no_ops_module_mentions_an_import_of_structures() -> None:
    offenders = []
    for path in sorted(OPS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module",
                "__import__",
            ):
                names = [
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                ]
            offenders += [
                f"{path.name}:{node.lineno} {name}"
                for name in names
                if name.startswith("pc3d.structures") or name == "pc3d.structures"
            ]
    assert offenders == []


def test_running_every_op_loads_no_structures_module() -> None:
    code = """
import sys, torch
from pc3d import ops
boxes = torch.tensor([[0.0, 0.0, 0.0, 2.0, 1.0, 1.5, 0.3], [0.5, 0.0, 0.0, 2.0, 1.0, 1.5, 0.0]])
points = torch.rand(50, 4)
ops.box_iou_bev(boxes, boxes); ops.box_iou_3d(boxes, boxes, aligned=True, mode="iof")
ops.nms_bev(boxes, torch.tensor([0.9, 0.8]), 0.1); ops.points_in_boxes(points, boxes, mode="all")
ops.hard_voxelize(points, [0.5, 0.5, 0.5], [0, 0, 0, 1, 1, 1], 4, 10)
loaded = sorted(name for name in sys.modules if name.startswith("pc3d.structures"))
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
