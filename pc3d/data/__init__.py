"""Data for training and evaluation: synthetic LiDAR scenes (:mod:`pc3d.data.synthetic`)."""
