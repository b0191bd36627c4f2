"""Shared test setup: one CPU thread per library, GPU tests skipped without a GPU.

The suite runs on 2-core machines next to other work, so torch and ONNX Runtime are
held to one thread, and the pipeline tests use the torch engine with `threads: 1`.
"""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


def _has_cuda() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:  # a broken driver install: treat as no GPU
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cpu_config():
    """A RunConfig for tests: the torch engine on one CPU thread, quiet, small batches."""
    from streamfix.pipeline.run_config import ProgressConfig, RunConfig

    return RunConfig(engine="torch", device="cpu", batch=2, engines={"torch": {"threads": 1}},
                     progress=ProgressConfig(mode="off"))
