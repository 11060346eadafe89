"""CLI suite: wall time of `pc3d` commands as processes, next to the interpreter's own start-up.

Each command runs as a subprocess (the `pc3d` console script beside this interpreter), once to
warm the file cache, then `REPEATS` times; the table shows the median wall time, how much it
adds to `python -c pass` (the same interpreter doing nothing), and the median CPU time (user +
system) of the process, which other processes disturb less than the wall time. `python -c "import torch"` is there as a
reference: a command that converts between coordinate systems goes through `pc3d.structures`
and pays for it. The device argument is ignored (nothing here uses one).
"""

from __future__ import annotations

import os
import resource
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_times(argv: list[str], repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall and CPU time in seconds of running `argv` to completion (after one warm-up run).

    Raises:
        RuntimeError: the command fails (its stderr is in the message).
    """
    wall, cpu = [], []
    for attempt in range(repeats + 1):
        cpu_before, start = _children_cpu(), time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        elapsed, used = time.perf_counter() - start, _children_cpu() - cpu_before
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()}")
        if attempt:
            wall.append(elapsed)
            cpu.append(used)
    return statistics.median(wall), statistics.median(cpu)


def commands(out_dir: Path) -> list[tuple[str, list[str]]]:
    """The timed commands: (label, argv)."""
    pc3d = pc3d_executable()
    rel = os.path.relpath
    return [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ('python -c "import torch"', [sys.executable, "-c", "import torch"]),
        ("pc3d --help", [*pc3d, "--help"]),
        (f"pc3d info {rel(SCAN, ROOT)}", [*pc3d, "info", str(SCAN)]),
        (
            f"pc3d convert --src lidar --dst lidar {SCAN.name} scan.ply",
            [*pc3d, "convert", "--src", "lidar", "--dst", "lidar", str(SCAN), str(out_dir / "scan.ply")],
        ),
        (
            f"pc3d convert --src camera --dst lidar --calib {CALIB.name} {LABEL.name} boxes.json",
            [
                *pc3d,
                "convert",
                "--src",
                "camera",
                "--dst",
                "lidar",
                "--calib",
                str(CALIB),
                str(LABEL),
                str(out_dir / "boxes.json"),
            ],
        ),
    ]


def run(device: str) -> list[dict]:
    """Time every command; one row per command, the first being `python -c pass`."""
    del device  # processes on the CPU only
    with tempfile.TemporaryDirectory(prefix="pc3d-bench-cli-") as tmp:
        timed = [(label, *median_times(argv)) for label, argv in commands(Path(tmp))]
    base = timed[0][1]
    return [
        {
            "command": label,
            "ms": wall * 1e3,
            "over_python_ms": (wall - base) * 1e3,
            "ratio": wall / base,
            "cpu_ms": cpu * 1e3,
        }
        for label, wall, cpu in timed
    ]


def print_table(title: str, rows: list[dict]) -> None:
    """Print `rows` as a Markdown table under `title`."""
    print(f"\n## {title}\n")
    print(f"median of {REPEATS} runs after one warm-up, each a new process\n")
    print("| command | wall (ms) | over `python -c pass` (ms) | / `python -c pass` | CPU (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| `{r['command']}` | {r['ms']:.0f} | {r['over_python_ms']:+.0f} | {r['ratio']:.2f}x | {r['cpu_ms']:.0f} |"
        )
