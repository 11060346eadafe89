"""Exact resume: a run killed with SIGKILL part-way through an epoch and resumed from its last
checkpoint ends with the same bits as a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from conftest import REPO, model_state, python
from pc3d.config import load_config
from pc3d.engine.checkpoint import LAST_POINTER
from pc3d.engine.runner import RunOptions, build_trainer, run_train

# 64 samples in batches of 8: 8 iterations per epoch, 40 in all; a checkpoint every 4 iterations
# lands mid-epoch every other time (iter_4, epoch_1, iter_12 ...). Dropout and per-sample augmentation make every random
# generator matter; an evaluation every 8 iterations must not disturb them.
RESUME_CONFIG = {
    "model": {"dropout": 0.2},
    "schedule": {"epochs": None, "iterations": 40, "lr": {"type": "cosine", "milestones": None}},
    "train": {"checkpoint_every": 4, "eval_every": 8, "log_every": 5},
}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


def test_sigkill_mid_epoch_then_resume_is_bit_identical(write_config, registry, plugin_env, tmp_path):
    config_path = write_config(RESUME_CONFIG)
    interrupted = tmp_path / "interrupted"
    command = [
        python(),
        "-m",
        "pc3d",
        "train",
        str(config_path),
        "--work-dir",
        str(interrupted),
        "--deterministic",
    ]

    # Slow each step down so that the kill lands while the run is still going.
    first = subprocess.Popen(
        [*command, "--set", "model.step_sleep=0.1"],
        cwd=REPO,
        env=plugin_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pointer = interrupted / LAST_POINTER
    deadline = time.monotonic() + 120
    killed_after = None
    try:
        while time.monotonic() < deadline and first.poll() is None:
            if pointer.is_file():
                name = pointer.read_text().strip()
                if name.startswith("iter_") and int(name[5:-4]) >= 10:
                    first.send_signal(signal.SIGKILL)
                    killed_after = name
                    break
            time.sleep(0.02)
    finally:
        if first.poll() is None and killed_after is None:
            first.kill()
        output = first.communicate(timeout=60)[0].decode()
    assert killed_after is not None, f"no mid-run checkpoint appeared:\n{output}"
    assert first.returncode == -signal.SIGKILL
    killed_at = int(killed_after[5:-4])
    assert killed_at % 8 != 0, "the checkpoint the run resumes from must be mid-epoch"
    assert not (interrupted / "epoch_5.pth").exists(), "the first run finished before the kill"

    # Resume through the thin wrapper script, which must behave as `pc3d train`.
    # subprocess.run spelled out as the CLI process tests do: each sets its own command, cwd, env, timeout.
    resumed = subprocess.run(
        [python(), "tools/train.py", *command[4:], "--resume"],
        cwd=REPO,
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    reference = tmp_path / "reference"
    run_train(
        load_config(config_path),
        RunOptions(work_dir=reference, deterministic=True),
        registry=registry,
    )
    final = "epoch_5.pth"
    _assert_same_state(model_state(interrupted / final), model_state(reference / final))
    a = torch.load(interrupted / final, weights_only=True)
    b = torch.load(reference / final, weights_only=True)
    for group_a, group_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        _assert_same_state(group_a, group_b)
    assert a["scheduler"] == b["scheduler"]

    # metrics.jsonl of the resumed run: one record per evaluation, none repeated.
    records = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [8, 16, 24, 32, 40]
    expected = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["mse"] for r in records] == [r["mse"] for r in expected]


def test_resume_in_process_from_every_kind_of_checkpoint(write_config, registry, tmp_path):
    """Resuming from an epoch-end and from a mid-epoch checkpoint both end where the
    uninterrupted run ends (no kill: the faster, in-process check of the same property)."""
    config = load_config(write_config(RESUME_CONFIG))
    full = tmp_path / "full"
    run_train(config, RunOptions(work_dir=full), registry=registry)
    final = model_state(full / "epoch_5.pth")
    for start in ("iter_12.pth", "epoch_2.pth"):
        work = tmp_path / start
        work.mkdir()
        # A fresh work dir holding only that checkpoint: resume reads it from there.
        (work / start).write_bytes((full / start).read_bytes())
        trainer = build_trainer(config, RunOptions(work_dir=work, resume=True), registry=registry)
        assert trainer.iteration == int(start.split("_")[1][:-4]) * (8 if start.startswith("epoch") else 1)
        trainer.train()
        _assert_same_state(model_state(work / "epoch_5.pth"), final)


def test_resume_refuses_a_changed_schedule(write_config, registry, tmp_path):
    config = load_config(write_config(RESUME_CONFIG))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    changed = load_config(write_config(RESUME_CONFIG), ["schedule.iterations=80"])
    with pytest.raises(Exception, match="'schedule' section differs") as info:
        build_trainer(changed, RunOptions(work_dir=tmp_path, resume=True), registry=registry)
    assert "--load-from" in str(info.value)


def test_resume_without_checkpoint_starts_fresh_and_says_so(write_config, registry, tmp_path, capsys):
    config = load_config(
        write_config({"schedule": {"epochs": 1, "lr": {"type": "constant", "milestones": None}}})
    )
    trainer = build_trainer(config, RunOptions(work_dir=tmp_path / "new", resume=True), registry=registry)
    assert trainer.iteration == 0
    assert "no checkpoint" in capsys.readouterr().err
    trainer.logger.close()


def test_the_log_of_a_work_dir_gives_its_latest_run_with_resumes_joined(write_config, registry, tmp_path):
    """Every run appends to log.jsonl: ``latest_run`` (what ``pc3d plot`` draws) gives the latest
    run's training records, once per logged iteration, with a resumed run's repeats dropped."""
    from pc3d.vis.plots import latest_run, read_jsonl

    config = load_config(write_config(RESUME_CONFIG))
    full = tmp_path / "full"
    run_train(config, RunOptions(work_dir=full), registry=registry)
    uninterrupted, runs = latest_run(read_jsonl(full / "log.jsonl"))
    steps = [r["iteration"] for r in uninterrupted]
    assert runs == 1 and steps == sorted(set(steps)) and {5, 10, 40} <= set(steps)
    # An interrupted run: its log went on to iteration 40 past its last checkpoint, iter_12.
    work = tmp_path / "work"
    work.mkdir()
    (work / "iter_12.pth").write_bytes((full / "iter_12.pth").read_bytes())
    (work / "log.jsonl").write_bytes((full / "log.jsonl").read_bytes())
    run_train(config, RunOptions(work_dir=work, resume=True), registry=registry)
    records = read_jsonl(work / "log.jsonl")
    repeated = [s for s in steps if s > 12]
    assert sum(r.get("kind") == "train" for r in records) == len(steps) + len(repeated)
    joined, runs = latest_run(records)
    assert runs == 1
    # Exact resume: the joined log is the uninterrupted run's, value for value, except the loss
    # of the first record after the resume (an average over the iterations since iteration 12,
    # not since the record before).
    assert [(r["iteration"], r["lr"]) for r in joined] == [(r["iteration"], r["lr"]) for r in uninterrupted]
    first_after = min(repeated)
    assert [r["loss"] for r in joined if r["iteration"] != first_after] == [
        r["loss"] for r in uninterrupted if r["iteration"] != first_after
    ]
    # A fresh, shorter run in the same folder: only its own records.
    shorter = load_config(write_config(RESUME_CONFIG), ["schedule.iterations=20"])
    run_train(shorter, RunOptions(work_dir=work), registry=registry)
    latest, runs = latest_run(read_jsonl(work / "log.jsonl"))
    assert runs == 2 and [r["iteration"] for r in latest] == [s for s in steps if s <= 20]


def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(write_config, plugin_env, tmp_path):
    """torchrun stops its workers, and batch systems end jobs, with SIGTERM."""
    work = tmp_path / "terminated"
    command = [python(), "-m", "pc3d", "train", str(write_config(RESUME_CONFIG)), "--work-dir", str(work)]
    run = subprocess.Popen(
        [*command, "--set", "model.step_sleep=0.1"],
        cwd=REPO,
        env=plugin_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and run.poll() is None and not (work / LAST_POINTER).is_file():
            time.sleep(0.02)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err.decode()[-2000:]
    assert f"continue with `pc3d train CONFIG --work-dir {work} --resume`" in err.decode()
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "interrupted"


def test_resume_from_a_checkpoint_of_another_model_says_so_first(write_config, registry, tmp_path):
    """Before the schedule or shape differences that follow from it."""
    pytest.importorskip("pc3d_seg", reason="the recorded model, PointSegmentor, is the seg plugin's")
    config = load_config(write_config(RESUME_CONFIG))
    run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    final = tmp_path / "epoch_5.pth"
    state = torch.load(final, weights_only=True)
    state["config"]["model"] = {"type": "PointSegmentor", "class_names": ["ground", "car"]}
    torch.save(state, final)
    with pytest.raises(
        Exception,
        match=r"cannot resume TinyRegressor from it \(it holds a PointSegmentor of classes ground, car",
    ):
        build_trainer(config, RunOptions(work_dir=tmp_path, resume=final), registry=registry)
