"""CLI suite: wall time of `pc3d` commands as processes, next to the interpreter's own start-up.

Each command runs as a subprocess (the `pc3d` console script beside this interpreter), once to
warm the file cache, then `REPEATS` times; the table shows the median and how much each adds to
`python -c pass` (the same interpreter doing nothing). `python -c "import torch"` is there as a
reference: a command that converts between coordinate systems goes through `pc3d.structures`
and pays for it. The device argument is ignored (nothing here uses one).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KITTI = ROOT / "tests" / "data" / "kitti" / "training"
SCAN = KITTI / "velodyne" / "000001.bin"
CALIB = KITTI / "calib" / "000001.txt"
LABEL = KITTI / "label_2" / "000001.txt"
REPEATS = int(os.environ.get("PC3D_BENCH_REPEATS", "7"))


def pc3d_executable() -> list[str]:
    """The `pc3d` console script of this interpreter, else `python -m pc3d`."""
    beside = Path(sys.executable).parent / "pc3d"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("pc3d")
    return [found] if found else [sys.executable, "-m", "pc3d"]


def median_wall(argv: list[str], repeats: int = REPEATS) -> float:
    """Median wall time in seconds of running `argv` to completion (after one warm-up run).

    Raises:
        RuntimeError: the command fails (its stderr is in the message).
    """
    times = []
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()}")
        if attempt:
            times.append(elapsed)
    return statistics.median(times)


def commands(out_dir: Path) -> list[tuple[str, list[str]]]:
    """The timed commands: (label, argv)."""
    pc3d = pc3d_executable()
    rel = os.path.relpath
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ('python -c "import torch"', [sys.executable, "-c", "import torch"]),
        ("pc3d --help", [*pc3d, "--help"]),
        (f"pc3d info {rel(SCAN, ROOT)}", [*pc3d, "info", str(SCAN)]),
        (f"pc3d convert --src lidar --dst lidar {SCAN.name} scan.ply",
         [*pc3d, "convert", "--src", "lidar", "--dst", "lidar", str(SCAN), str(out_dir / "scan.ply")]),
        (f"pc3d convert --src camera --dst lidar --calib {CALIB.name} {LABEL.name} boxes.json",
         [*pc3d, "convert", "--src", "camera", "--dst", "lidar", "--calib", str(CALIB), str(LABEL),
          str(out_dir / "boxes.json")]),
    ]


def run(device: str) -> list[dict]:
    """Time every command; one row per command, the first being `python -c pass`."""
    del device  # processes on the CPU only
    with tempfile.TemporaryDirectory(prefix="pc3d-bench-cli-") as tmp:
        timed = [(label, median_wall(argv)) for label, argv in commands(Path(tmp))]
    base = timed[0][1]
    return [{"command": label, "ms": t * 1e3, "over_python_ms": (t - base) * 1e3, "ratio": t / base}
            for label, t in timed]


def print_table(title: str, rows: list[dict]) -> None:
    """Print `rows` as a Markdown table under `title`."""
    print(f"\n## {title}\n")
    print(f"median of {REPEATS} runs after one warm-up, each a new process\n")
    print("| command | wall (ms) | over `python -c pass` (ms) | / `python -c pass` |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| `{r['command']}` | {r['ms']:.0f} | {r['over_python_ms']:+.0f} | {r['ratio']:.2f}x |")
