"""Timing helpers shared by the benchmark suites."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any


def median_time(
    fn: Callable[[], object], repeats: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None
) -> float:
    """Median wall time of `fn()` in seconds over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(op: str, size: str, ours: float, peer_name: str, peer: float) -> dict:
    return {
        "op": op,
        "size": size,
        "pc3d_ms": ours * 1e3,
        "peer": peer_name,
        "peer_ms": peer * 1e3,
        "speedup": peer / ours if ours > 0 else float("inf"),
    }


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}\n")
    print("| op | size | pc3d (ms) | peer | peer (ms) | peer / pc3d |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['op']} | {r['size']} | {r['pc3d_ms']:.2f} | {r['peer']} | {r['peer_ms']:.2f} | {r['speedup']:.2f}x |"
        )


@contextlib.contextmanager
def torch_threads(count: int, device: str | None = None) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous number.

    A suite compared with single-threaded peers runs torch on one thread too: on a small shared
    machine a second intra-op thread mostly waits for the core it shares, which makes timings swing.

    Args:
        count: The threads inside the block.
        device: Where the suite runs; on a CUDA device the CPU thread count is left alone. None:
            always set it.
    """
    import torch

    previous = torch.get_num_threads()
    if device is None or torch.device(device).type == "cpu":
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def device_sync(device: Any) -> Callable[[], None] | None:
    """What :func:`median_time` calls after each run so that it times the work, not its launch.

    Args:
        device: A ``torch.device`` or its name.

    Returns:
        ``torch.cuda.synchronize`` on a CUDA device, else None (CPU work is synchronous).
    """
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def torch_suite(threads: int) -> Callable[[Callable[[Any], list[dict]]], Callable[[str], list[dict]]]:
    """Makes ``body(dev)`` a suite's entry point ``run(device)``, the one ``tools/bench.py`` calls.

    ``run`` turns the device name into a ``torch.device`` and calls ``body`` with it, with
    ``threads`` torch intra-op threads on the CPU (see :func:`torch_threads`).

    Args:
        threads: The torch threads the body runs with on the CPU.

    Returns:
        A decorator: ``body`` (``torch.device`` -> rows) becomes ``run`` (device name -> rows).
    """

    def decorate(body: Callable[[Any], list[dict]]) -> Callable[[str], list[dict]]:
        def run(device: str) -> list[dict]:
            import torch

            with torch_threads(threads, device):
                return body(torch.device(device))

        run.__doc__ = body.__doc__
        return run

    return decorate
