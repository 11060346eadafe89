"""Checkpoint files: atomic writes, weights-only loads, and clear errors for damaged files that
leave the previous checkpoint usable."""

from __future__ import annotations

import collections
import io
import os
import random

import pytest
import torch

from conftest import model_state
from pc3d.config import load_config
from pc3d.engine import checkpoint as ckpt
from pc3d.engine.runner import RunOptions, build_trainer, run_train


def test_save_is_atomic_when_the_write_dies(tmp_path, monkeypatch):
    target = tmp_path / "epoch_1.pth"
    ckpt.save_checkpoint({"model": {"w": torch.ones(3)}}, target)

    def dying_save(obj, handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint({"model": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_checkpoint(target)["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]  # no temp file left


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_still_loads(
    write_config, registry, tmp_path
):
    config = load_config(write_config())
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    latest = tmp_path / "epoch_3.pth"
    size = latest.stat().st_size
    with open(latest, "r+b") as handle:
        handle.truncate(size // 2)

    with pytest.raises(ckpt.CheckpointError) as info:
        build_trainer(config, RunOptions(work_dir=tmp_path, resume=True), registry=registry)
    message = str(info.value)
    assert f"checkpoint {latest} is truncated or corrupt ({size // 2} bytes" in message
    previous = tmp_path / "epoch_2.pth"
    assert (
        f"the checkpoint {previous} there loads (to continue training from it: --resume {previous}" in message
    )

    assert previous.is_file()
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path, resume=previous), registry=registry)
    assert trainer.iteration == 16
    trainer.train()
    trainer.close()
    assert "This is an internal" not in message  # torch's advice after its first sentence is cut
    # With keep_last 1 the only other loadable file is best.pth: the hint names it.
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "epoch_3.pth").write_bytes(latest.read_bytes()[: size // 2])
    (lone / "best.pth").write_bytes(previous.read_bytes())
    with pytest.raises(ckpt.CheckpointError, match=r"the checkpoint .*lone/best.pth there loads"):
        ckpt.load_checkpoint(lone / "epoch_3.pth")
    # Continuing from epoch 2 rewrote epoch 3 with the same weights the first run had.
    run_train(config, RunOptions(work_dir=tmp_path / "again"), registry=registry)
    a, b = model_state(latest), model_state(tmp_path / "again/epoch_3.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_kind_of_damage_is_the_named_error(tmp_path):
    # Damaged files fail inside torch in many ways (EOFError, IndexError, struct.error, ...):
    # each must be the clear error, never a traceback. Cut and flipped bytes of both torch
    # formats, and random bytes, drawn from a fixed seed.
    rng = random.Random(0)
    originals = []
    for zipped in (True, False):
        buffer = io.BytesIO()
        torch.save(
            {"model": {"w": torch.ones(3)}, "iteration": 8}, buffer, _use_new_zipfile_serialization=zipped
        )
        originals.append(buffer.getvalue())
    path = tmp_path / "iter_8.pth"
    for trial in range(400):
        data = bytearray(rng.choice(originals))
        if trial % 3 == 0:
            data = data[: rng.randrange(len(data))]
        elif trial % 3 == 1:
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(rng.randbytes(rng.choice([1, 8, 256])))
        path.write_bytes(bytes(data))
        try:
            ckpt.load_checkpoint(path)
        except ckpt.CheckpointError as err:
            assert f"checkpoint {path} " in str(err)
        # A flipped byte inside tensor data leaves a readable (if wrong) file: that loads.


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "iter_5.pth"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(ckpt.CheckpointError, match=r"iter_5.pth is truncated or corrupt \(256 bytes"):
        ckpt.load_checkpoint(garbage)
    with pytest.raises(ckpt.CheckpointError, match="nothing.pth does not exist"):
        ckpt.load_checkpoint(tmp_path / "nothing.pth")


class Payload:
    """Any class: unpickling it would run code, which weights_only refuses."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.ones(1)}, "extra": Payload()}, path)
    with pytest.raises(ckpt.CheckpointError, match=r"evil.pth holds objects other than tensors.*Payload"):
        ckpt.load_checkpoint(path)


def test_model_state_from_accepts_other_toolkits_layouts(tmp_path):
    weights = collections.OrderedDict(w=torch.ones(2))
    for layout in ({"state_dict": weights}, {"model_state": weights}, weights):
        assert ckpt.model_state_from(layout, "x.pth").keys() == {"w"}
    with pytest.raises(ckpt.CheckpointError, match="no model weights found"):
        ckpt.model_state_from({"meta": 1}, "x.pth")


def test_a_weights_file_cannot_be_resumed(write_config, registry, tmp_path):
    torch.save({"w": torch.ones(1)}, tmp_path / "weights.pth")
    config = load_config(write_config())
    with pytest.raises(ckpt.CheckpointError, match="not a pc3d training checkpoint.*--load-from"):
        build_trainer(
            config, RunOptions(work_dir=tmp_path, resume=tmp_path / "weights.pth"), registry=registry
        )


def test_list_and_resolve_order_epoch_and_iteration_files(tmp_path):
    for name in ("iter_12.pth", "epoch_1.pth", "iter_4.pth", "epoch_2.pth", "best.pth"):
        ckpt.save_checkpoint({}, tmp_path / name)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path, iters_per_epoch=8)]
    assert names == ["iter_4.pth", "epoch_1.pth", "iter_12.pth", "epoch_2.pth"]
    assert ckpt.resolve_resume(tmp_path, 8) == tmp_path / "epoch_2.pth"
    ckpt.write_last_pointer(tmp_path, tmp_path / "iter_12.pth")
    assert ckpt.resolve_resume(tmp_path, 8) == tmp_path / "iter_12.pth"
    assert ckpt.checkpoint_name(2, 16, 8) == "epoch_2.pth"
    assert ckpt.checkpoint_name(1, 12, 8) == "iter_12.pth"


def test_unfinished_writes_of_a_killed_run_are_cleaned_up(write_config, registry, tmp_path, capsys):
    config = load_config(write_config({"schedule": {"epochs": 1}}))
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".epoch_2.pth.abc123.tmp"
    leftover.write_bytes(b"PK half")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_text("keep")
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path), registry=registry)
    trainer.close()
    assert not leftover.exists() and unrelated.exists()
    assert "removed 1 unfinished checkpoint write(s)" in capsys.readouterr().err
