"""Training-engine benchmarks: what the engine's bookkeeping costs per iteration, and what an
atomic checkpoint write costs.

`python tools/bench.py engine` times, on one CPU thread:

- one epoch of a small MLP (2 x 256 hidden, batch 32, 64 iterations) through
  `pc3d.engine`'s loop (`Trainer.train`: per-sample seeding, NaN check, loss terms as floats,
  logging, hooks; building the run is not timed) against a bare PyTorch loop over the same model,
  data loader and optimizer. The difference is the engine's bookkeeping, which a real model's
  step time dwarfs;
- `pc3d.engine.checkpoint.save_checkpoint` (temp file, fsync, rename, directory fsync) of a
  4-million-parameter state against a plain `torch.save` to the final path (no fsync).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from benchmarks.common import median_time, row, torch_threads

HIDDEN = 256
BATCH = 32
SAMPLES = 2048  # 64 iterations per epoch


class BenchMLP(nn.Module):
    def __init__(self, in_dim: int = 16, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def loss(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {"loss": (self.net(x) - y).square().mean()}

    def predict(self, x: Tensor) -> Tensor:
        return self.net(x)


class BenchData:
    def __init__(self, num_samples: int = SAMPLES, in_dim: int = 16) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(num_samples, in_dim, generator=generator)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"x": self.x[index], "y": self.y[index]}


class _BenchPlugin:
    from pc3d.plugin_api import hookimpl

    @hookimpl
    def pc3d_register(self, registry: Any) -> None:
        registry.add_model(BenchMLP)
        registry.add_dataset(BenchData)


def _engine_epoch(work: Path, registry: Any) -> float:
    from pc3d.config import load_config
    from pc3d.engine.runner import RunOptions, build_trainer

    config = {
        "model": {"type": "BenchMLP"},
        "data": {"train": {"dataset": {"type": "BenchData"}, "batch_size": BATCH}},
        "optimizer": {"type": "AdamW", "lr": 1e-3},
        "schedule": {"epochs": 1},
        "train": {"log_every": 10, "checkpoint_every": 1000},
        "runtime": {"num_threads": 1},
    }
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)

    times = []
    for _ in range(4):  # the first is a warm-up
        trainer = build_trainer(loaded, RunOptions(work_dir=work / "run"), registry=registry)
        # Only the loop: the final checkpoint is timed separately below.
        trainer.save_checkpoint = lambda: work  # type: ignore[method-assign,assignment,return-value]
        start = time.perf_counter()
        trainer.train()
        times.append(time.perf_counter() - start)
        trainer.close()
    return statistics.median(times[1:])


def _bare_epoch() -> float:
    from torch.utils.data import DataLoader

    def one_epoch() -> None:
        torch.manual_seed(0)
        model = BenchMLP()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loader = DataLoader(BenchData(), batch_size=BATCH, shuffle=True)
        for batch in loader:
            loss = model.loss(batch["x"], batch["y"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return median_time(one_epoch, repeats=3)


def run(device: str) -> list[dict]:
    if device != "cpu":
        raise SystemExit("the engine suite measures CPU bookkeeping; run it with --device cpu")
    from pc3d.engine.checkpoint import save_checkpoint
    from pc3d.plugin_manager import PluginManager

    with torch_threads(1):
        manager = PluginManager(autoload=False, allow=(), block=())
        manager.register_plugin(_BenchPlugin(), "bench")
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            ours = _engine_epoch(work, manager.registry)
            bare = _bare_epoch()
            state = {"model": {f"w{i}": torch.randn(1000, 1000) for i in range(4)}}
            atomic = median_time(lambda: save_checkpoint(state, work / "a.pth"), repeats=5)
            plain = median_time(lambda: torch.save(state, work / "b.pth"), repeats=5)
    iters = SAMPLES // BATCH
    return [
        row(
            "train epoch (engine vs bare loop)",
            f"{iters} it, MLP {HIDDEN}, batch {BATCH}",
            ours,
            "bare torch loop",
            bare,
        ),
        row(
            "checkpoint write (atomic+fsync vs torch.save)", "4M params (16 MB)", atomic, "torch.save", plain
        ),
    ]
