#!/usr/bin/env bash
# Regenerates the README and docs pictures from the KITTI frame shipped in tests/data (run from anywhere).
# Off-screen rendering: xvfb-run gives a virtual display; without it pc3d falls back to EGL.
set -euo pipefail
cd "$(dirname "$0")/../.."
PC3D=${PC3D:-.venv/bin/pc3d}
RUN=()
command -v xvfb-run >/dev/null && RUN=(xvfb-run -a)
"${RUN[@]}" "$PC3D" show --kitti tests/data/kitti/training --frame 000001 --view bev --size 1024x512 --labels \
    --out docs/images/kitti_000001_bev.png
"${RUN[@]}" "$PC3D" show --kitti tests/data/kitti/training --frame 000001 --pred docs/images/kitti_000001_pred.json \
    --labels --size 1024x512 --out docs/images/kitti_000001_gt_pred.png
"${PC3D%/pc3d}/python" -c "import numpy as np; p = np.fromfile('tests/data/kitti/training/velodyne/000001.bin', np.float32).reshape(-1, 4); np.save('/tmp/ground.npy', (p[:, 2] > -1.5).astype(np.int64))"
"${RUN[@]}" "$PC3D" show tests/data/kitti/training/velodyne/000001.bin --point-labels /tmp/ground.npy \
    --class-names "below -1.5 m,above -1.5 m" --range -10 -20 40 20 --size 800x400 \
    --out docs/images/kitti_000001_point_labels.png
