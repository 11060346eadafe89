"""Shared by every test in the repository (tests/ and each plugin's tests/)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # The tests run with `pytest -n 2` on two cores: several intra-op threads per worker spin
    # against each other and make a 0.1 s training loop take seconds.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
