"""The pycuda buffers on a real GPU: a round trip through the copy-in, compute and
copy-out streams with PyTorch computing on the compute stream in between (so the
events order the three streams, and PyTorch and pycuda share the primary context),
and a close that leaves PyTorch working and no context pushed. Skipped without a GPU
(tests/conftest.py) or without pycuda."""

import ctypes
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("pycuda.driver", reason="pycuda is not installed")

from streamfix.benchmarks.cuda_overlap import device_tensor  # noqa: E402
from streamfix.engines.cuda_buffers import CudaPipeline, PrimaryContext  # noqa: E402

pytestmark = pytest.mark.gpu


def test_round_trip_through_three_streams_with_pytorch_computing_between():
    torch.cuda.init()
    batches = [np.random.default_rng(i).random((4, 2, 544, 960), dtype=np.float32) for i in range(5)]
    outputs = []
    context = PrimaryContext(0)
    with context:
        pipe = CudaPipeline(slots=2)
        pending: list[int] = []  # slots in flight, oldest first
        for i, batch in enumerate(batches):
            index = i % len(pipe.slots)
            if len(pending) == len(pipe.slots):  # the slot's last batch must be off the GPU first
                outputs.append(pipe.wait(pipe.slots[pending.pop(0)]))
            slot = pipe.slots[index]
            pipe.upload(slot, batch, batch.shape, np.float32)
            with torch.cuda.stream(torch.cuda.ExternalStream(pipe.compute_handle)):
                x, y = device_tensor(slot.in_ptr, batch.shape), device_tensor(slot.out_ptr, batch.shape)
                torch.mul(x, 2.0, out=y)
                y.add_(1.0)
            pipe.download(slot)
            pending.append(index)
        outputs += [pipe.wait(pipe.slots[index]) for index in pending]
        pipe.close()
    context.close()
    assert torch.ones(3, device="cuda").sum().item() == 3.0  # PyTorch's context is still alive
    for batch, out in zip(batches, outputs):
        np.testing.assert_array_equal(out, batch * 2.0 + 1.0)


def _current_context() -> int:
    """The calling thread's current CUDA context, from the driver itself."""
    handle = ctypes.c_void_p()
    assert ctypes.CDLL("libcuda.so.1").cuCtxGetCurrent(ctypes.byref(handle)) == 0
    return handle.value or 0


def test_a_closed_context_is_no_longer_current_on_a_fresh_thread():
    """A thread starts with no current context; after using and closing ours it must
    have none again (releasing a primary context never pops it)."""
    seen = []

    def use_and_close():
        seen.append(_current_context())
        context = PrimaryContext(0)
        with context:
            CudaPipeline(slots=1).close()
        context.close()
        seen.append(_current_context())

    worker = threading.Thread(target=use_and_close)
    worker.start()
    worker.join()
    assert seen == [0, 0]
