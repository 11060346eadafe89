#!/usr/bin/env python
"""pc3d benchmarks: `python tools/bench.py {all,structures,ops,eval,cli,...} [--device cpu|cuda]`.

Each suite lives in `tools/benchmarks/<name>.py` and defines `run(device: str) -> list[dict]`;
each row is one operation timed for pc3d and for a peer/reference implementation in the same run.
The table shows the median time of each and the ratio (peer / pc3d; above 1 means pc3d is faster).
A suite whose rows say something else (`cli`: commands against the interpreter's start-up)
defines its own `print_table(title, rows)`.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks.common import print_table


def available_suites() -> list[str]:
    """Names of the suites in `tools/benchmarks` (every module but `common`)."""
    folder = Path(__file__).resolve().parent / "benchmarks"
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name != "common")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suite(s) and print their tables; the exit status."""
    suites = available_suites()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=["all", *suites])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    for name in suites if args.suite == "all" else [args.suite]:
        suite = importlib.import_module(f"benchmarks.{name}")
        printer = getattr(suite, "print_table", print_table)
        printer(f"{name} ({args.device})", suite.run(args.device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
