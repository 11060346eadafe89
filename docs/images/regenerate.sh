#!/usr/bin/env bash
# Regenerates the README picture from the KITTI frame shipped in tests/data (run from anywhere).
# Off-screen rendering: xvfb-run gives a virtual display; without it pc3d falls back to EGL.
set -euo pipefail
cd "$(dirname "$0")/../.."
PC3D=${PC3D:-.venv/bin/pc3d}
RUN=()
command -v xvfb-run >/dev/null && RUN=(xvfb-run -a)
"${RUN[@]}" "$PC3D" show --kitti tests/data/kitti/training --frame 000001 --view bev --size 1024x512 --labels \
    --out docs/images/kitti_000001_bev.png
