"""pc3d.io.atomic: new files get 0o666 less the umask, replaced files keep their mode, nothing is
left behind when a write fails, and the process umask is never touched."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pc3d.io import atomic
from pc3d.io.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything calls ``os.umask`` (set the umask before using this)."""

    def refuse(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:#o}) called")

    monkeypatch.setattr(os, "umask", refuse)
    yield


def _with_umask(mask: int) -> int:
    return os.umask(mask)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o027, 0o640)])
def test_a_new_file_gets_0o666_less_the_umask(tmp_path: Path, mask: int, expected: int) -> None:
    previous = _with_umask(mask)
    try:
        path = atomic_write_text(tmp_path / "new" / "file.txt", "hello\n")
    finally:
        os.umask(previous)
    assert path.read_text() == "hello\n"
    assert _mode(path) == expected
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


@pytest.mark.parametrize("kept", [0o600, 0o640, 0o664])
def test_replacing_a_file_keeps_its_mode(tmp_path: Path, kept: int) -> None:
    path = tmp_path / "secret.json"
    path.write_text("old")
    os.chmod(path, kept)
    previous = _with_umask(0o022)
    try:
        atomic_write_text(path, "new")
    finally:
        os.umask(previous)
    assert path.read_text() == "new"
    assert _mode(path) == kept


def test_the_temporary_file_has_the_kept_mode_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "private.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    seen: list[int] = []
    atomic_write(path, lambda handle: seen.append(stat.S_IMODE(os.fstat(handle.fileno()).st_mode)))
    assert seen == [0o600]


def test_the_umask_is_never_changed(tmp_path: Path, umask_guard: None) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("old")
    os.chmod(existing, 0o600)
    atomic_write_text(existing, "new")
    atomic_write_bytes(tmp_path / "fresh.bin", b"\x00")
    assert _mode(existing) == 0o600


def test_a_failed_write_leaves_no_temporary_file_and_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("old")

    def fail(handle) -> None:
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "never.txt", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_text(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_a_taken_temporary_name_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    atomic_write_text(tmp_path / "a.txt", "first")  # leaves nothing named ...aaaaaaaa
    (tmp_path / ".b.txt.aaaaaaaa.tmp").write_text("someone else's")
    atomic_write_text(tmp_path / "b.txt", "second")
    assert (tmp_path / "b.txt").read_text() == "second"
    assert (tmp_path / ".b.txt.aaaaaaaa.tmp").read_text() == "someone else's"


def test_files_written_from_threads_all_get_the_umask_mode(tmp_path: Path, umask_guard: None) -> None:
    probe = tmp_path.parent / f"{tmp_path.name}_probe.txt"
    probe.write_text("x")  # what a plain open() gives under this umask
    expected = _mode(probe)
    probe.unlink()

    def writer(index: int) -> None:
        for round_ in range(20):
            atomic_write_text(tmp_path / f"f{index}_{round_}.txt", "x")
            with open(tmp_path / f"plain{index}_{round_}.txt", "w") as handle:
                handle.write("x")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    modes = {_mode(p) for p in tmp_path.iterdir()}
    assert modes == {expected}


def _no_temporary_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.rglob("*"))


def test_errors_name_the_target_never_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not a file") as info:
        atomic_write_bytes(tmp_path / "a_folder", b"x")
    assert info.value.filename == str(tmp_path / "a_folder")
    (tmp_path / "a_file").write_text("kept")
    for target in (tmp_path / "a_file" / "x.json", tmp_path / "a_file" / "deeper" / "x.json"):
        with pytest.raises(
            NotADirectoryError, match=f"{tmp_path / 'a_file'} is a file, so it cannot hold"
        ) as info:
            atomic_write_bytes(target, b"x")
        assert info.value.filename == str(target)
    assert (tmp_path / "a_file").read_text() == "kept"

    real_open = os.open

    def refused(path: str, *args: object) -> int:
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(
        PermissionError, match=f"Permission denied \\(cannot create files in {tmp_path}\\)"
    ) as info:
        atomic_write_bytes(tmp_path / "out.json", b"x")
    assert info.value.filename == str(tmp_path / "out.json")
    assert _no_temporary_files(tmp_path)


def test_a_full_disk_names_the_target_and_keeps_the_earlier_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("earlier")

    def full(handle: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(
        OSError, match=r"No space left on device \(nothing written; an earlier file there is as it was\)"
    ) as info:
        atomic_write(target, full)
    assert info.value.filename == str(target) and info.value.errno == 28
    assert target.read_text() == "earlier" and _no_temporary_files(tmp_path)

    def reads_a_missing_file(handle: object) -> None:
        (tmp_path / "missing.txt").read_bytes()

    with pytest.raises(FileNotFoundError) as missing:
        atomic_write(target, reads_a_missing_file)
    assert missing.value.filename == str(tmp_path / "missing.txt")  # about that file: unchanged
