"""Run the original ``kitti_object_eval_python`` (as shipped in a wheel of MMDetection3D 1.x,
``mmdet3d/evaluation/functional/kitti_utils/{eval,rotate_iou}.py``) on pickled inputs.

Used by ``test_kitti_port_crosscheck.py`` in a separate Python that has numba. Usage::

    python port_runner.py PORT_DIR CASES.pkl OUT.pkl [--float32]

PORT_DIR holds the port's ``eval.py`` and ``rotate_iou.py``. The port's rotated IoU needs CUDA;
without a GPU it runs in numba's CUDA simulator (slow). By default it is replaced by exact
polygon geometry (shapely), pc3d's one deliberate difference from the port; ``--float32`` keeps
the port's own float32 kernel.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pickle
import sys
import types

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np

NAMES = ["Car", "Pedestrian", "Cyclist"]


def load_port(port_dir: str) -> types.ModuleType:
    package = types.ModuleType("kitti_port")
    package.__path__ = [port_dir]
    sys.modules["kitti_port"] = package
    for name in ("rotate_iou", "eval"):
        spec = importlib.util.spec_from_file_location(
            f"kitti_port.{name}", os.path.join(port_dir, f"{name}.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["kitti_port.eval"]


def exact_rotate_iou(
    boxes: np.ndarray, qboxes: np.ndarray, criterion: int = -1, device_id: int = 0
) -> np.ndarray:
    """The port's rotated overlap (rows: boxes, columns: qboxes, each x, z, l, w, ry) with
    exact geometry: IoU for criterion -1, intersection area for 2."""
    import shapely

    def footprint(b: np.ndarray) -> shapely.Polygon:
        x, z, length, width, ry = (float(v) for v in b)
        c, s = math.cos(ry), math.sin(ry)
        corners = (
            (-length / 2, -width / 2),
            (-length / 2, width / 2),
            (length / 2, width / 2),
            (length / 2, -width / 2),
        )
        return shapely.Polygon([(c * u + s * v + x, -s * u + c * v + z) for u, v in corners])

    out = np.zeros((len(boxes), len(qboxes)))
    for i, b in enumerate(boxes):
        pb = footprint(b)
        for j, q in enumerate(qboxes):
            inter = pb.intersection(footprint(q)).area
            out[i, j] = inter / (b[2] * b[3] + q[2] * q[3] - inter) if criterion == -1 else inter
    return out


def main() -> None:
    port_dir, cases_path, out_path = sys.argv[1:4]
    port = load_port(port_dir)
    if "--float32" not in sys.argv:
        sys.modules["kitti_port.rotate_iou"].rotate_iou_gpu_eval = exact_rotate_iou
    with open(cases_path, "rb") as f:
        cases = pickle.load(f)
    strict = np.array([[0.7, 0.5, 0.5]] * 3)
    loose = np.array([[0.7, 0.5, 0.5], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    results = []
    for gt_annos, dt_annos, classes, aos in cases:
        ids = [NAMES.index(c) for c in classes]
        min_overlaps = np.stack([strict, loose])[:, :, ids]
        kinds = ["bbox", "bev", "3d"] + (["aos"] if aos else [])
        out = port.do_eval(gt_annos, dt_annos, ids, min_overlaps, kinds)
        results.append([None if x is None else np.asarray(x) for x in out])
    with open(out_path, "wb") as f:
        pickle.dump(results, f)


if __name__ == "__main__":
    main()
