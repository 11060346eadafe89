"""Tests of pc3d.structures. Each module imports the public names it tests from pc3d.structures
itself (so the lists of class names look alike); the data they share is in `_common` (a sample
box) and `_kitti` (the KITTI samples read with numpy)."""
