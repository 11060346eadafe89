"""Checkpoint files: atomic writes, safe loads, and finding the latest one in a work directory.

A checkpoint is a ``torch.save``'d mapping made only of tensors, numbers, strings, lists, tuples
and dicts, so it loads with ``torch.load(..., weights_only=True)`` (no pickled code runs on load).

Writing is atomic (``pc3d.io.atomic``): the file is written under a temporary name in the same
folder, flushed and fsync'ed, renamed over the target and the folder is fsync'ed, so a crash (or
SIGKILL) mid-save leaves either the old file or the new one, never half a file; the new file gets
the permissions ``open()`` would give it (``0o666`` less the umask). ``last_checkpoint`` (a
one-line text file, written the same way) names the newest periodic checkpoint.

File names: ``epoch_{E}.pth`` for a checkpoint at the end of epoch ``E`` (1-based, as printed),
``iter_{I}.pth`` for one after global iteration ``I`` that is not at an epoch end, and ``best.pth``
for the best evaluation so far.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pc3d.errors import Pc3dError
from pc3d.io.atomic import atomic_write, atomic_write_text

__all__ = [
    "BEST_NAME",
    "FORMAT",
    "LAST_POINTER",
    "CheckpointError",
    "checkpoint_iteration",
    "checkpoint_name",
    "list_checkpoints",
    "load_checkpoint",
    "model_state_from",
    "remove_unfinished_writes",
    "resolve_resume",
    "save_checkpoint",
    "write_last_pointer",
]

#: Marks files written by the engine (anything else is a plain weights file).
FORMAT = "pc3d-checkpoint"
FORMAT_VERSION = 1
LAST_POINTER = "last_checkpoint"
BEST_NAME = "best.pth"
_PERIODIC = re.compile(r"^(epoch|iter)_(\d+)\.pth$")


class CheckpointError(Pc3dError):
    """A checkpoint file is missing, truncated, corrupt or not a pc3d checkpoint (names it)."""


def checkpoint_name(epoch: int, iteration: int, iters_per_epoch: int) -> str:
    """``epoch_{epoch}.pth`` at an epoch end, else ``iter_{iteration}.pth``.

    Args:
        epoch: completed epochs.
        iteration: completed iterations (global).
        iters_per_epoch: iterations in one epoch.
    """
    if iteration == epoch * iters_per_epoch:
        return f"epoch_{epoch}.pth"
    return f"iter_{iteration}.pth"


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    Args:
        state: tensors and plain data (numbers, strings, lists, tuples, dicts).
        path: the checkpoint file; missing folders are created.

    Returns:
        The path written.
    """
    payload = dict(state)
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def write_last_pointer(work_dir: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> None:
    """Record ``checkpoint`` (a file in ``work_dir``) as the newest periodic checkpoint."""
    atomic_write_text(Path(work_dir) / LAST_POINTER, Path(checkpoint).name + "\n")


def remove_unfinished_writes(work_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files of checkpoint writes that a killed process left behind
    (``.epoch_3.pth.*.tmp``); returns what was removed."""
    folder = Path(work_dir)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*.pth.*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint (or any weights file) with ``weights_only=True`` onto the CPU.

    Args:
        path: the file.

    Returns:
        Its top-level mapping.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or holds objects other than
            tensors and plain data; the message names the file and, for a file in a work
            directory, the other checkpoints there (and which of them loads).
        PermissionError: the file cannot be read.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} does not exist" + _others_hint(file))
    try:
        state = _torch_load(file)
    except PermissionError:
        raise
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Unsupported global" not in text:
            # Garbage bytes reach the (legacy) unpickler and fail there too.
            raise _corrupt(file, "not a readable torch file") from err
        # torch reports objects outside the weights-only allow-list this way.
        reason = next(
            (
                line.split("WeightsUnpickler error:", 1)[1].strip()
                for line in text.splitlines()
                if "WeightsUnpickler error:" in line
            ),
            _first_line(err),
        )
        raise CheckpointError(
            f"checkpoint {file} holds objects other than tensors and plain data, so it is not "
            f"loaded (weights_only=True; pc3d never runs code from a checkpoint): {reason}"
            + _others_hint(file)
        ) from err
    except Exception as err:
        # Damaged bytes fail in the zip reader or the unpickler in many ways (EOFError,
        # IndexError, struct.error, AssertionError ...): each means the file is damaged.
        raise _corrupt(file, _first_line(err)) from err
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {file} holds a {type(state).__name__}, expected a mapping of weights"
        )
    return state


def _torch_load(file: Path) -> Any:
    with warnings.catch_warnings():
        # A damaged file can claim any pickle protocol; torch warns about that before failing.
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(file, map_location="cpu", weights_only=True)


def _corrupt(file: Path, reason: str) -> CheckpointError:
    reason = reason.split(". ", 1)[0]  # torch's zip reader adds paragraphs of advice
    return CheckpointError(
        f"checkpoint {file} is truncated or corrupt ({file.stat().st_size} bytes; {reason})"
        + _others_hint(file)
    )


def model_state_from(state: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """The model weights in a loaded file: a pc3d checkpoint's ``model``, the ``state_dict`` /
    ``model_state`` of MMDetection3D / OpenPCDet files, or a plain state dict.

    An MMDetection3D 1.x checkpoint (``meta.mmdet3d_version``, or its component key prefixes) is
    mapped through :data:`pc3d.nn.checkpoint_mmdet3d.MMDET3D_KEY_TABLE` (sparse-conv weights
    permuted to spconv 2's layout); keys no row maps are an error listing them. So is a bare
    MMDetection3D state dict whose sparse-conv kernels are in MMCV's layout
    (:func:`~pc3d.nn.checkpoint_mmdet3d.has_mmcv_sparse_layout`); any other bare state dict is
    taken as it is.
    """
    if state.get("format") == FORMAT:
        return dict(state["model"])
    # Imported here: the engine does not need the model zoo's key table for its own checkpoints.
    from pc3d.nn.checkpoint_mmdet3d import (
        convert_mmdet3d_state_dict,
        has_mmcv_sparse_layout,
        is_mmdet3d_checkpoint,
    )

    if is_mmdet3d_checkpoint(state):
        return dict(convert_mmdet3d_state_dict(state["state_dict"], source=str(path)))
    for key in ("state_dict", "model_state", "model"):
        inner = state.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner)
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        if has_mmcv_sparse_layout(state):
            return dict(convert_mmdet3d_state_dict(state, source=str(path)))
        return dict(state)
    raise CheckpointError(
        f"{path}: no model weights found (expected a pc3d checkpoint, a state dict, or a mapping "
        f"with 'state_dict' / 'model_state'); top-level keys: {', '.join(map(str, state)) or 'none'}"
    )


def list_checkpoints(work_dir: str | os.PathLike[str], iters_per_epoch: int | None = None) -> list[Path]:
    """Periodic checkpoints (``epoch_*.pth``, ``iter_*.pth``) in ``work_dir``, oldest first.

    Args:
        work_dir: the run's folder (a missing one has none).
        iters_per_epoch: orders ``epoch_E`` against ``iter_I`` files; without it, files are
            ordered by modification time.
    """
    folder = Path(work_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _PERIODIC.match(p.name) and p.is_file()]

    def order(path: Path) -> tuple[float, str]:
        if iters_per_epoch is not None:
            return (float(checkpoint_iteration(path, iters_per_epoch) or 0), path.name)
        return (path.stat().st_mtime, path.name)

    return sorted(found, key=order)


def checkpoint_iteration(path: Path, iters_per_epoch: int) -> int | None:
    """The iteration a periodic checkpoint's name stands for (``epoch_E``: ``E * iters_per_epoch``,
    ``iter_I``: ``I``), or None for another name."""
    match = _PERIODIC.match(path.name)
    if match is None:
        return None
    number = int(match.group(2))
    return number * iters_per_epoch if match.group(1) == "epoch" else number


def resolve_resume(work_dir: str | os.PathLike[str], iters_per_epoch: int | None = None) -> Path | None:
    """The checkpoint ``--resume`` without a path continues from: the one ``last_checkpoint``
    names, else the newest periodic checkpoint; ``None`` where the work directory has none."""
    folder = Path(work_dir)
    pointer = folder / LAST_POINTER
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if name and (folder / name).is_file():
            return folder / name
    found = list_checkpoints(folder, iters_per_epoch)
    return found[-1] if found else None


def _others_hint(file: Path) -> str:
    others = [p for p in list_checkpoints(file.parent) if p.resolve() != file.resolve()]
    best = file.parent / BEST_NAME
    if best.is_file() and best.resolve() != file.resolve():
        others.insert(0, best)  # tried last (newest first below): a periodic one resumes later on
    if not others:
        return ""
    # Newest first, stopping at the first that loads: checkpoints can be gigabytes.
    newest = next((p for p in reversed(others) if _loads(p)), None)
    if newest is None:
        return f"; the other checkpoints there ({', '.join(p.name for p in others)}) fail too"
    return (
        f"; the checkpoint {newest} there loads (to continue training from it: --resume {newest}; "
        f"all there: {', '.join(p.name for p in others)})"
    )


def _loads(path: Path) -> bool:
    try:
        _torch_load(path)
    except Exception:  # any failure to read it (see load_checkpoint)
        return False
    return True


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
