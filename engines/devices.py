"""Device names and the per-user cache folder, with one meaning for every backend.

Device names: "auto", "cpu", "cuda" (= "cuda:0") and "cuda:N". "auto" means the
first GPU when one is usable, else the CPU; "usable" is always PyTorch seeing a CUDA
GPU, plus, for a backend that needs its own GPU build (ONNX Runtime's CUDA
provider), that backend's own check. So `--engine onnxruntime --device auto` on a
GPU machine with the CPU-only onnxruntime package runs on the CPU instead of
failing, while `--engine auto --device auto` settles on the GPU once for all
backends (engines/select.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from streamfix.core.errors import OptionError


def resolve_device(device: str, *, backend_gpu: Callable[[], bool] | None = None) -> str:
    """`device` as "cpu" or "cuda:N"; an unknown name is an OptionError."""
    if device == "auto":
        import torch  # a heavy import, needed only to look for a GPU

        usable = torch.cuda.is_available() and (backend_gpu is None or backend_gpu())
        return "cuda:0" if usable else "cpu"
    if device == "cuda":
        return "cuda:0"
    kind, _, index = device.partition(":")
    if device == "cpu" or (kind == "cuda" and index.isdigit()):
        return device
    raise OptionError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def cache_root() -> Path:
    """Per-user cache of generated files (ONNX graphs, TensorRT engines, timings):
    $XDG_CACHE_HOME/streamfix, else ~/.cache/streamfix."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamfix"
