"""Distributed training on the CPU: two gloo processes under torchrun match one process with the
same global batch; samplers shard, resume and pad as documented."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import REPO, model_state
from pc3d.config import ConfigError, load_config
from pc3d.engine.dist import EvalShardSampler, ResumableDistributedSampler
from pc3d.engine.runner import RunOptions, run_train

TORCHRUN = shutil.which("torchrun") or str(Path(__file__).resolve().parents[2] / ".venv/bin/torchrun")


def train_with_two_processes(
    config: Path, work_dir: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 -m pc3d train CONFIG --work-dir WORK_DIR``, its
    output captured."""
    argv = [TORCHRUN, "--standalone", "--nproc_per_node", "2", "-m", "pc3d", "train", str(config)]
    return subprocess.run(
        [*argv, "--work-dir", str(work_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(
    write_config, registry, plugin_env, tmp_path
):
    # No dropout: the two runs must see the same data and gradients; only the summation order
    # of the gradient average differs, hence a float tolerance rather than equality.
    overrides = {"schedule": {"epochs": 2}, "train": {"log_every": 2}}
    two = write_config({**overrides, "data": {"train": {"batch_size": 4}}}, name="two.yaml")
    one = write_config({**overrides, "data": {"train": {"batch_size": 8}}}, name="one.yaml")
    work_two = tmp_path / "two"
    result = train_with_two_processes(two, work_two, plugin_env, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stderr

    work_one = tmp_path / "one"
    run_train(load_config(one), RunOptions(work_dir=work_one), registry=registry)

    final_two = torch.load(work_two / "epoch_2.pth", weights_only=True)
    assert final_two["world_size"] == 2 and final_two["iters_per_epoch"] == 8
    assert len(final_two["rng"]) == 2  # every rank's generators, for exact resume
    a, b = final_two["model"], model_state(work_one / "epoch_2.pth")
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{key} differs")
    initial = _initial_weight(load_config(one), registry, tmp_path / "init")
    assert not torch.equal(b["net.0.weight"], initial), "did not train"

    # Metrics gathered over both ranks cover the whole validation set once.
    two_metrics = [json.loads(x) for x in (work_two / "metrics.jsonl").read_text().splitlines()]
    one_metrics = [json.loads(x) for x in (work_one / "metrics.jsonl").read_text().splitlines()]
    assert [m["count"] for m in two_metrics] == [32.0, 32.0]
    for m2, m1 in zip(two_metrics, one_metrics):
        assert m2["mse"] == pytest.approx(m1["mse"], rel=1e-5)
    # Only rank 0 wrote: one start record in the log.
    starts = [line for line in (work_two / "log.jsonl").read_text().splitlines() if '"kind": "start"' in line]
    assert len(starts) == 1


def test_an_evaluation_during_distributed_training_scores_the_checkpointed_model(
    write_config, registry, plugin_env, tmp_path
):
    """BatchNorm's running statistics: each rank updates its own after the last step; the
    evaluation must use rank 0's (those the checkpoint saves), as `pc3d test` of it does."""
    from pc3d.engine.runner import run_test

    config = write_config({"model": {"norm": "batch"}, "schedule": {"epochs": 1}}, name="bn.yaml")
    work = tmp_path / "bn"
    result = train_with_two_processes(config, work, plugin_env, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    during = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    after = run_test(load_config(config), work / "epoch_1.pth", device="cpu", registry=registry)
    assert during["mse"] == pytest.approx(after["mse"], rel=1e-6)


def _initial_weight(config, registry, work_dir: Path) -> torch.Tensor:
    from pc3d.engine.runner import build_trainer

    trainer = build_trainer(config, RunOptions(work_dir=work_dir), registry=registry)
    trainer.logger.close()
    return trainer.model.net[0].weight.detach().clone()


def test_sampler_order_depends_on_seed_and_epoch_only_and_skips_on_resume():
    data = list(range(20))

    def order(rank: int, world: int, epoch: int, skip: int = 0, seed: int = 3) -> list[int]:
        sampler = ResumableDistributedSampler(
            data, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        sampler.set_position(epoch, skip)
        pairs = list(sampler)
        assert all(e == epoch for e, _ in pairs)
        assert len(sampler) == len(pairs)
        return [i for _, i in pairs]

    full = order(0, 1, epoch=2)
    assert sorted(full) == data
    assert order(0, 1, epoch=2) == full  # a function of (seed, epoch)
    assert order(0, 1, epoch=3) != full
    assert order(0, 1, epoch=2, seed=4) != full
    assert order(0, 1, epoch=2, skip=6) == full[6:]
    # Two ranks interleave the same permutation: together, the global batches of one process.
    assert order(0, 2, epoch=2) == full[0::2]
    assert order(1, 2, epoch=2) == full[1::2]
    # 20 samples over 3 ranks: padded to 21 by repeating the start.
    shards = [order(r, 3, epoch=0) for r in range(3)]
    assert [len(s) for s in shards] == [7, 7, 7]
    assert sorted(sum(shards, [])) == sorted(data + [order(0, 1, epoch=0)[0]])


def test_eval_shards_cover_every_sample_exactly_once():
    shards = [list(EvalShardSampler(10, 3, r)) for r in range(3)]
    assert [len(EvalShardSampler(10, 3, r)) for r in range(3)] == [4, 3, 3]
    assert sorted(i for shard in shards for _, i in shard) == list(range(10))


def test_sync_bn_on_cpu_is_a_clear_config_error(write_config, registry, tmp_path):
    config = load_config(write_config({"runtime": {"sync_bn": True}}))
    with pytest.raises(ConfigError, match="SyncBatchNorm runs on CUDA only"):
        run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    # An evaluation never syncs BatchNorm: pc3d test of that config runs on the CPU.
    from pc3d.engine.runner import run_test

    plain = load_config(write_config({"schedule": {"epochs": 1}}, name="plain.yaml"))
    run_train(plain, RunOptions(work_dir=tmp_path / "plain"), registry=registry)
    assert "mse" in run_test(config, tmp_path / "plain" / "epoch_1.pth", device="cpu", registry=registry)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_with_amp_and_sync_bn_conversion(write_config, registry, tmp_path):
    config = load_config(
        write_config({"runtime": {"device": "cuda", "sync_bn": True}, "train": {"amp": True}})
    )
    metrics = run_train(config, RunOptions(work_dir=tmp_path), registry=registry)
    state = torch.load(tmp_path / "epoch_3.pth", weights_only=True)
    assert state["scaler"]["scale"] > 0  # a live float16 GradScaler was saved
    assert metrics["count"] == 32.0


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices"
)
def test_two_nccl_processes(write_config, plugin_env, tmp_path):
    config = write_config({"runtime": {"device": "cuda"}, "schedule": {"epochs": 1}})
    result = train_with_two_processes(config, tmp_path, plugin_env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(tmp_path / "epoch_1.pth", weights_only=True)["world_size"] == 2


def test_errors_under_torchrun_name_their_rank_and_a_lost_peer_is_not_a_bug(
    write_config, plugin_env, tmp_path, monkeypatch, capsys
):
    bad_key = write_config({"train": {"log_evry": 2}}, name="typo.yaml")
    result = train_with_two_processes(bad_key, tmp_path / "typo", plugin_env, timeout=180)
    assert result.returncode != 0
    # torchrun stops the other worker when one fails: at least the first one's line, tagged.
    assert re.search(
        rf"pc3d train \[rank [01]\]: error: train.log_evry \(from {re.escape(str(bad_key))}:", result.stderr
    )
    # Rank 1's model refuses a batch; rank 0, waiting for it in the gradient all-reduce, loses it
    # (unless torchrun stops it first): never "a bug".
    one_fails = write_config({"model": {"fail_in": "loss_rank1"}}, name="one_fails.yaml")
    result = train_with_two_processes(one_fails, tmp_path / "one", plugin_env, timeout=180)
    assert result.returncode != 0
    assert "pc3d train [rank 1]: error: model.head.num_classes: label 7 is outside 0..2" in result.stderr
    assert "this is a bug" not in result.stderr
    # What a rank that lost its peer prints, whichever wins the race above.
    import torch.distributed as torch_dist

    from pc3d.cli import main

    def lose_the_peer(args):
        raise torch_dist.DistBackendError(
            "[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:29500"
        )

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr("pc3d.cli.info.run", lose_the_peer)
    assert main(["info", "x.bin"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "pc3d info [rank 0]: error: another process of the run stopped, or did not answer within runtime.dist_timeout"
    )


def test_loss_terms_that_differ_between_processes_stop_the_run_on_every_rank(
    write_config, plugin_env, tmp_path
):
    """Averaging by position would mix terms (or wait for ever on a longer list)."""
    config = write_config({"model": {"fail_in": "terms_rank1"}, "train": {"log_every": 2}}, name="terms.yaml")
    result = train_with_two_processes(config, tmp_path / "terms", plugin_env, timeout=180)
    assert result.returncode != 0
    assert (
        "the processes logged different values, which cannot be averaged over them (rank 0: " in result.stderr
    )
    assert re.search(r"rank 1: [\w, ]*loss_extra", result.stderr)
