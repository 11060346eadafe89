#!/usr/bin/env python
"""Same as `pc3d test`: `python tools/test.py CONFIG CHECKPOINT [--json FILE] [--set k=v ...]`."""

import sys

from pc3d.cli import main

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]]))
