#!/usr/bin/env python
"""Same as `pc3d train`: `python tools/train.py CONFIG [--work-dir DIR] [--resume [PATH]] ...`
(also `torchrun --nproc_per_node N tools/train.py CONFIG`)."""

import sys

from pc3d.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
