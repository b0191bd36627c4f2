"""How much of the PCIe copies the pycuda buffers hide behind compute (gpu_bench.py).

engines/cuda_buffers.py gives each in-flight batch a slot and runs uploads, compute
and downloads on three streams, so that with two batches in flight one batch's
copies run while the other computes. This measures that without TensorRT: PyTorch
runs the model in FP16 on the pipeline's compute stream, reading and writing the
slots' device memory in place, in the primary context both share.

    copy only     upload and download of one batch, nothing computed
    compute only  the model on a batch already on the GPU
    pipelined     a stream of batches, upload -> compute -> download, two in flight

The copies are hidden to the extent that pipelined < copy + compute:
hidden = (copy + compute - pipelined) / copy, between 0 and 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


def device_tensor(pointer: int, shape: tuple[int, ...]):
    """A float32 PyTorch CUDA tensor over device memory pycuda owns (no copy)."""
    import torch

    class _DeviceArray:
        __cuda_array_interface__ = {"shape": tuple(shape), "typestr": "<f4", "data": (pointer, False),
                                    "version": 2, "strides": None}

    return torch.as_tensor(_DeviceArray(), device="cuda")


@dataclass(frozen=True, slots=True)
class Overlap:
    size: str
    batch: int
    copy_s: float  # per batch
    compute_s: float
    pipelined_s: float

    @property
    def hidden(self) -> float:
        return min(1.0, max(0.0, (self.copy_s + self.compute_s - self.pipelined_s) / self.copy_s))


def measure_overlap(model, width: int, height: int, batch: int, *, size: str, repeats: int = 8) -> Overlap:
    import torch

    from streamfix.core.network import fold_batchnorm
    from streamfix.engines.cuda_buffers import CudaPipeline, PrimaryContext

    net = fold_batchnorm(model).cuda().half().to(memory_format=torch.channels_last).eval()
    x = np.random.default_rng(0).random((batch, 2, height, width), dtype=np.float32)
    out_shape = (batch, 1, height, width)
    context = PrimaryContext(torch.cuda.current_device())
    try:
        with context:
            pipe = CudaPipeline(slots=2)
            try:
                seconds = _measure(net, pipe, x, out_shape, repeats)
            finally:
                torch.cuda.synchronize()
                pipe.close()
    finally:
        context.close()
        torch.cuda.empty_cache()  # blocks PyTorch allocated on the (now destroyed) compute stream
    return Overlap(size, batch, *seconds)


def _measure(net, pipe, x: np.ndarray, out_shape: tuple[int, ...], repeats: int) -> list[float]:
    import torch

    stream = torch.cuda.ExternalStream(pipe.compute_handle)

    def compute(slot) -> None:
        with torch.cuda.stream(stream), torch.inference_mode():
            y = net(device_tensor(slot.in_ptr, x.shape).half().contiguous(memory_format=torch.channels_last))
            device_tensor(slot.out_ptr, out_shape).copy_(y)

    def copy_only() -> None:
        slot = pipe.slots[0]
        pipe.upload(slot, x, out_shape, np.float32)
        pipe.download(slot)
        pipe.wait(slot)

    def compute_only() -> None:
        compute(pipe.slots[0])
        pipe.sync_compute()

    def pipelined() -> None:
        pending: list[int] = []
        for i in range(repeats):
            if len(pending) == len(pipe.slots):
                pipe.wait(pipe.slots[pending.pop(0)])
            slot = pipe.slots[i % len(pipe.slots)]
            pipe.upload(slot, x, out_shape, np.float32)
            compute(slot)
            pipe.download(slot)
            pending.append(i % len(pipe.slots))
        for index in pending:
            pipe.wait(pipe.slots[index])

    seconds = [_per_call(step, repeats) for step in (copy_only, compute_only)]
    pipelined()  # warm-up
    start = time.perf_counter()
    pipelined()
    return [*seconds, (time.perf_counter() - start) / repeats]


def _per_call(step, repeats: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def overlap_table(rows: list[Overlap]) -> str:
    lines = ["| size | batch | copy only ms | compute only ms | pipelined ms/batch | copies hidden |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.size} | {r.batch} | {1000 * r.copy_s:.2f} | {1000 * r.compute_s:.2f} | "
              f"{1000 * r.pipelined_s:.2f} | {100 * r.hidden:.0f}% |" for r in rows]
    return "\n".join(lines)
