"""The engine protocol shared by every backend (installed as `streamfix.engines`).

An engine runs one CAR-DRN on batches of float32 planes:

    infer(batch: N x (C + cond) x H x W float32 in [0, 1]) -> N x C x H x W float32

Engines know tensors and nothing about PyAV or frames. Each backend lives in its own
file (torch_engine.py, onnxruntime_engine.py, tensorrt_engine.py) with a frozen config
dataclass; `choose()` in select.py picks one by table lookup and records, for every
backend it skipped, one line saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class EngineUnavailable(RuntimeError):
    """This backend cannot run here (package missing, no GPU, build failed, ...).

    The message is one line meant for users: it says what is missing and what to do.
    """


@runtime_checkable
class Engine(Protocol):
    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...

    def __enter__(self) -> "Engine": ...

    def __exit__(self, *exc: object) -> None: ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Fallback:
    """One backend that `choose()` skipped, and why."""

    engine: str
    reason: str

    def __str__(self) -> str:
        return f"engine {self.engine} not used: {self.reason}"


def one_line(message: object) -> str:
    """The first non-empty line of a message: reasons are shown one line each."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else "no reason given"


def check_counts(*, threads: int, max_batch: int) -> None:
    """The checks every CPU backend config makes of its thread and batch counts."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")


def float32_batch(batch: np.ndarray, planes: int) -> np.ndarray:
    """`batch` as the contiguous float32 N x planes x H x W array a backend is fed; a
    ValueError for any other shape."""
    if batch.ndim != 4 or batch.shape[1] != planes:
        raise ValueError(f"expected a batch N x {planes} x H x W, got shape {tuple(batch.shape)}")
    return np.ascontiguousarray(batch, dtype=np.float32)
