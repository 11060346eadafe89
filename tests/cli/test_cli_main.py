"""`pc3d.cli.main`: one line per error or warning, never a traceback; what a `.npy` holds."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import pc3d.cli.info
from pc3d.cli import build_parser, error_line, main
from pc3d.io.points import write_point_file

KITTI = Path(__file__).resolve().parents[1] / "data" / "kitti" / "training"
SCAN = KITTI / "velodyne" / "000001.bin"


def _one_error_line(err: str, command: str) -> str:
    assert err.count("\n") == 1 and err.startswith(f"pc3d {command}: error: "), err
    assert "Traceback" not in err
    return err


def test_os_error_with_a_file_name_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    assert main(["convert", "--src", "lidar", "--dst", "lidar", str(SCAN), str(blocker / "scan.ply")]) == 2
    err = _one_error_line(capsys.readouterr().err, "convert")
    assert str(blocker) in err
    assert (
        error_line(FileNotFoundError(2, "No such file or directory", "x.bin"))
        == "x.bin: No such file or directory"
    )
    assert main(["info", str(tmp_path)]) == 2
    assert "is a folder, expected a file" in _one_error_line(capsys.readouterr().err, "info")


class _BrokenFrames:
    """A data set whose frames cannot be read (a bad label file, say)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> object:
        from pc3d.errors import FormatError

        raise FormatError(f"labels/{index:06d}.txt:3: unknown class 'Cra'")


def test_an_error_in_a_data_loader_worker_is_its_own_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch re-raises a worker's error with the worker's traceback as its message."""
    from torch.utils.data import DataLoader

    def reads_in_workers(args: argparse.Namespace) -> int:
        list(DataLoader(_BrokenFrames(), num_workers=1))
        return 0

    monkeypatch.setattr(pc3d.cli.info, "run", reads_in_workers)
    assert main(["info", str(SCAN)]) == 2
    err = _one_error_line(capsys.readouterr().err, "info")
    assert err == "pc3d info: error: labels/000000.txt:3: unknown class 'Cra'\n"


def test_interrupt_and_unexpected_errors_print_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    def buggy(args: argparse.Namespace) -> int:
        return 1 // 0

    monkeypatch.setattr(pc3d.cli.info, "run", interrupted)
    assert main(["info", str(SCAN)]) == 130
    assert _one_error_line(capsys.readouterr().err, "info") == "pc3d info: error: interrupted\n"
    monkeypatch.setattr(pc3d.cli.info, "run", buggy)
    assert main(["info", str(SCAN)]) == 1
    err = _one_error_line(capsys.readouterr().err, "info")
    assert "unexpected ZeroDivisionError: integer division or modulo by zero" in err and "PC3D_DEBUG=1" in err
    monkeypatch.setenv("PC3D_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", str(SCAN)])


def test_warnings_are_one_line_and_suggest_an_accepted_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_point_file(tmp_path / "n.pcd", np.array([[1, 2, 3, 0], [np.nan, 1, 1, 0]], np.float32))
    hook = warnings.showwarning
    assert main(["convert", "--src", "lidar", "--dst", "depth", str(path), str(tmp_path / "o.bin")]) == 0
    assert warnings.showwarning is hook  # main's hook is gone again
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and err.startswith("pc3d convert: warning: ") and "dropped 1 of 2 points" in err
    )
    assert "warnings.warn" not in err and "Warning:" not in err  # not Python's "file:line: Category:" format
    # The hint names a value `pc3d convert --nan-policy` accepts.
    suggested = re.findall(r"--nan-policy (\w+)", err)
    parser = build_parser(["convert"])
    args = parser.parse_args(["convert", "--dst", "lidar", "a", "b"])  # builds the convert parser
    choices = next(a.choices for a in _convert_parser(parser)._actions if "--nan-policy" in a.option_strings)
    assert args.nan_policy in choices and suggested and set(suggested) <= set(choices)


def _convert_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["convert"]


def test_a_process_never_shows_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "scan.bin"
    bad.write_bytes(b"\x00" * 10)
    done = subprocess.run(
        [sys.executable, "-m", "pc3d", "show", str(bad), "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("pc3d show: error: ") and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


# ---------------------------------------------------------------------- what a .npy holds


def test_info_and_convert_read_a_npy_by_the_same_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    points = tmp_path / "points.npy"
    np.save(points, np.array([[1, 2, 3, 0.5], [4, 5, 6, 0.1]], np.float32))
    wide = tmp_path / "wide.npy"
    np.save(wide, np.array([[1, 2, 3, 4, 5, 6, 0.5]], np.float32))
    assert main(["info", str(points)]) == 0
    assert "points  2" in capsys.readouterr().out
    assert main(["convert", "--src", "lidar", "--dst", "depth", str(points), str(tmp_path / "p.ply")]) == 0
    assert "2 points" in capsys.readouterr().out
    for argv in (
        ["info", str(wide)],
        ["convert", "--src", "lidar", "--dst", "depth", str(wide), str(tmp_path / "w.npy")],
    ):
        assert main(argv) == 2
        err = _one_error_line(capsys.readouterr().err, argv[0])
        assert "may hold points or boxes; say which (--what points or --what boxes" in err
    assert main(["info", "--what", "boxes", str(wide)]) == 0
    assert "boxes   1 x 7 values" in capsys.readouterr().out
    assert main(["info", "--what", "points", str(wide)]) == 0
    assert "points  1" in capsys.readouterr().out


def test_format_only_conversion_keeps_the_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scan.pcd"
    assert main(["convert", "--src", "lidar", "--dst", "lidar", str(SCAN), str(out)]) == 0
    assert "(file format only)" in capsys.readouterr().out
    np.testing.assert_array_equal(
        np.fromfile(SCAN, np.float32).reshape(-1, 4),
        __import__("pc3d.io", fromlist=["read_point_file"]).read_point_file(out).array,
    )
