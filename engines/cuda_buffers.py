"""CUDA memory, streams and the context for the TensorRT engine: the only module that
touches pycuda.

Context: we retain the device's *primary* context, the one the CUDA runtime uses, so
TensorRT (runtime API), PyTorch and this module share one context and one address
space in one process. It is pushed on entry to each call and popped on exit, so any
thread may call (the pipeline's worker threads are not the thread that opened the
engine). `pycuda.autoinit` is never used: it creates a context of its own, which
would make PyTorch's pointers invalid here and ours there.

Buffers: each in-flight batch owns a `Slot`: page-locked host memory in and out (a
CUDA copy from pageable memory is staged and synchronous) and device memory in and
out. Slots are reused across batches, grown when a larger batch comes, and freed on
close.

Streams: three, so that the two copy engines and the SMs work at once. Batch k+1's
upload (copy-in stream) runs while batch k computes (compute stream), and batch k's
download (copy-out stream) runs while batch k+1 computes. Events order each slot's
upload -> compute -> download across the streams; the host waits only on the
download of the slot it wants back. The streams are non-blocking: a default
(blocking) stream waits for, and is waited for by, the legacy default stream that
PyTorch launches on, so every PyTorch kernel in the process would serialize with
ours. The events keep no timestamps (we never time with them) and make the host
sleep while it waits instead of spinning a core.

Lifetime: pycuda destroys a stream or an event when its Python object goes, and can
do so only while its context is alive (after that it prints a warning and leaks
it). So `CudaPipeline.close()` drops them while the context is current, before the
context is released.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from streamfix.engines import cuda_driver

# CU_STREAM_NON_BLOCKING from cuda.h; pycuda exports no name for stream flags.
STREAM_NON_BLOCKING = 1


class CudaUnavailable(RuntimeError):
    """No usable CUDA device here; the message is one line saying why."""


def _driver() -> ModuleType:
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise CudaUnavailable(f"pycuda is not installed or does not load ({exc}): pip install 'pycuda>=2025.1.2' "
                              "(it compiles against the CUDA toolkit: nvcc must be on PATH)") from None
    return cuda


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    index: int
    name: str  # "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "9.0"
    total_bytes: int


def probe(index: int = 0) -> DeviceFacts:
    """Facts about CUDA device `index`, without creating a context; raises
    CudaUnavailable with a one-line reason when there is no such device."""
    cuda = _driver()
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise CudaUnavailable(f"the NVIDIA driver is not usable here (cuInit: {exc})") from None
    if count == 0:
        raise CudaUnavailable("no CUDA GPU found")
    if not 0 <= index < count:
        raise CudaUnavailable(f"there is no CUDA device {index} (found {count})")
    device = cuda.Device(index)
    major, minor = device.compute_capability()
    return DeviceFacts(index, device.name(), f"{major}.{minor}", int(device.total_memory()))


class PrimaryContext:
    """The primary context of one device, retained; `with ctx:` makes it current on
    the calling thread (re-entrant: pushes nest). `close()` when done."""

    def __init__(self, index: int = 0) -> None:
        self._cuda = _driver()
        self._cuda.init()
        self.index = index
        self._ctx = self._cuda.Device(index).retain_primary_context()

    def __enter__(self) -> "PrimaryContext":
        if self._ctx is None:
            raise RuntimeError("this CUDA context was closed")
        self._ctx.push()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cuda.Context.pop()

    def memory(self) -> tuple[int, int]:
        """(free, total) device bytes; call inside `with`."""
        free, total = self._cuda.mem_get_info()
        return int(free), int(total)

    def close(self) -> None:
        """Release our reference to the primary context (PyTorch keeps its own), leaving
        no context pushed on the calling thread. Call outside `with ctx:`.

        pycuda releases a primary context with `cuDevicePrimaryCtxRelease`, which
        never pops it: detaching outside a push first pushes it, then leaves it
        current (released, perhaps destroyed) on this thread. So: push it (pycuda
        then takes it for its current context and only releases it), pop it from the
        driver's stack ourselves, then detach, which also drops it from pycuda's stack.
        """
        if self._ctx is None:
            return
        ctx, self._ctx = self._ctx, None
        ctx.push()
        try:
            cuda_driver.pop_current_context()
        finally:
            ctx.detach()


class Slot:
    """Buffers and events of one in-flight batch."""

    def __init__(self, cuda: ModuleType) -> None:
        self._cuda = cuda
        self.host_in = self.host_out = None  # page-locked flat arrays
        self.dev_in = self.dev_out = None  # DeviceAllocation
        self.uploaded = _event(cuda)
        self.computed = _event(cuda)
        self.downloaded = _event(cuda)
        self.out_count = 0
        self.out_shape: tuple[int, ...] = ()

    def reserve(self, in_count: int, in_dtype: np.dtype, out_count: int, out_dtype: np.dtype) -> None:
        """Make room for `in_count`/`out_count` elements; reallocates only to grow.
        Call only while the slot is idle (its last download waited for)."""
        cuda = self._cuda
        if self.host_in is None or self.host_in.size < in_count or self.host_in.dtype != in_dtype:
            self._free_in()
            self.host_in = cuda.pagelocked_empty(in_count, in_dtype)
            self.dev_in = cuda.mem_alloc(max(1, self.host_in.nbytes))
        if self.host_out is None or self.host_out.size < out_count or self.host_out.dtype != out_dtype:
            self._free_out()
            self.host_out = cuda.pagelocked_empty(out_count, out_dtype)
            self.dev_out = cuda.mem_alloc(max(1, self.host_out.nbytes))

    @property
    def in_ptr(self) -> int:
        return int(self.dev_in)

    @property
    def out_ptr(self) -> int:
        return int(self.dev_out)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.host_in, self.host_out) if a is not None)

    def _free_in(self) -> None:
        if self.dev_in is not None:
            self.dev_in.free()
            self.host_in.base.free()
        self.host_in = self.dev_in = None

    def _free_out(self) -> None:
        if self.dev_out is not None:
            self.dev_out.free()
            self.host_out.base.free()
        self.host_out = self.dev_out = None

    def free(self) -> None:
        """Free the buffers and drop the events (call with the context current)."""
        self._free_in()
        self._free_out()
        self.uploaded = self.computed = self.downloaded = None


def _event(cuda: ModuleType):
    """An event the host can wait on without spinning, with no timestamps."""
    return cuda.Event(cuda.event_flags.BLOCKING_SYNC | cuda.event_flags.DISABLE_TIMING)


class CudaPipeline:
    """Copy-in, compute and copy-out streams plus `slots` buffer slots (see the module
    docstring). All methods must be called with the context current."""

    def __init__(self, slots: int = 2) -> None:
        if slots < 1:
            raise ValueError("a CUDA pipeline needs at least one slot")
        cuda = self._cuda = _driver()
        self.copy_in = self.compute = self.copy_out = self._computed = None
        self.slots: list[Slot] = []
        try:
            self.copy_in = cuda.Stream(STREAM_NON_BLOCKING)
            self.compute = cuda.Stream(STREAM_NON_BLOCKING)
            self.copy_out = cuda.Stream(STREAM_NON_BLOCKING)
            self._computed = _event(cuda)
            for _ in range(slots):
                self.slots.append(Slot(cuda))
        except BaseException:
            self._drop()  # now, while the context is current, not whenever the traceback goes
            raise

    @property
    def compute_handle(self) -> int:
        """The compute stream as the integer TensorRT's execute_async_v3 takes."""
        return int(self.compute.handle)

    def upload(self, slot: Slot, batch: np.ndarray, out_shape: tuple[int, ...], out_dtype: np.dtype) -> None:
        """Copy `batch` into the slot's page-locked memory (host work, now) and queue
        its upload; the compute stream will wait for it."""
        out_count = int(np.prod(out_shape))
        slot.reserve(batch.size, batch.dtype, out_count, np.dtype(out_dtype))
        staged = slot.host_in[: batch.size]
        np.copyto(staged, batch.reshape(-1), casting="no")
        self._cuda.memcpy_htod_async(slot.dev_in, staged, self.copy_in)
        slot.uploaded.record(self.copy_in)
        self.compute.wait_for_event(slot.uploaded)
        slot.out_count, slot.out_shape = out_count, tuple(out_shape)

    def download(self, slot: Slot) -> None:
        """Queue the slot's download behind the compute queued since its upload."""
        slot.computed.record(self.compute)
        self.copy_out.wait_for_event(slot.computed)
        self._cuda.memcpy_dtoh_async(slot.host_out[: slot.out_count], slot.dev_out, self.copy_out)
        slot.downloaded.record(self.copy_out)

    def wait(self, slot: Slot) -> np.ndarray:
        """Block until the slot's download is done; a copy of its output (the slot
        is reused by a later batch)."""
        slot.downloaded.synchronize()
        return slot.host_out[: slot.out_count].reshape(slot.out_shape).copy()

    def sync_compute(self) -> None:
        """Block (sleeping) until everything queued on the compute stream has run."""
        self._computed.record(self.compute)
        self._computed.synchronize()

    def synchronize(self) -> None:
        for stream in (self.copy_in, self.compute, self.copy_out):
            stream.synchronize()

    @property
    def host_bytes(self) -> int:
        return sum(s.nbytes for s in self.slots)

    def close(self) -> None:
        """Wait for the queued work, then free every buffer and destroy the events and
        streams. Call with the context current; calling again does nothing."""
        if self.compute is None:
            return
        self.synchronize()
        self._drop()

    def _drop(self) -> None:
        for slot in self.slots:
            slot.free()
        self.slots = []
        # The last references: pycuda destroys them now, in the current context.
        self.copy_in = self.compute = self.copy_out = self._computed = None
