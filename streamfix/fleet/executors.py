"""Choosing who runs the tasks (`scale.executor`) and how many workers there are.

How many, when the config says `workers: null`:
- GPU inference (device cuda, or auto with a GPU): one worker per `gpus_per_worker`
  share of each GPU (0.5: two per GPU, to keep a GPU busy while a worker decodes).
- CPU inference: one worker per `cpus_per_worker` cores: inference threads on all
  but one of them, which decodes and encodes (2 cores: one worker, one thread).
A Ray cluster is measured the same way from `ray.cluster_resources()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from streamfix.fleet.local_executor import LocalExecutor
from streamfix.fleet.ray_executor import RayExecutor


def local_gpus(device: str) -> list[str]:
    """The CUDA devices local workers spread over ([] for CPU inference)."""
    if device == "cpu":
        return []
    if device.startswith("cuda:"):
        return [device]
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver: no GPU
        count = 0
    if device == "cuda" and count == 0:
        return ["cuda"]  # let the engine say that there is none
    return [f"cuda:{i}" for i in range(count)]


def local_workers(scale: Any, gpus: list[str]) -> int:
    if scale.workers is not None:
        return scale.workers
    if gpus:
        return max(1, int(len(gpus) / scale.gpus_per_worker))
    return max(1, (os.cpu_count() or 1) // scale.cpus_per_worker)


def make_executor(config: Any, *, log: Callable[[str], None] = print) -> LocalExecutor | RayExecutor:
    """The executor the config asks for (Ray must be installed for "ray")."""
    scale = config.scale
    if scale.executor == "ray":
        use_gpu = config.device.startswith("cuda") or (config.device == "auto" and _cluster_has_gpus())
        return RayExecutor(scale.workers, gpus_per_worker=scale.gpus_per_worker,
                           cpus_per_worker=scale.cpus_per_worker, use_gpu=use_gpu, retries=scale.retries, log=log)
    gpus = local_gpus(config.device)
    return LocalExecutor(local_workers(scale, gpus), retries=scale.retries, devices=gpus,
                         cpu_cores=None if gpus else scale.cpus_per_worker, log=log)


def _cluster_has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0
