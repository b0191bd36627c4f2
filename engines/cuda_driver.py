"""Two calls into the NVIDIA driver itself (libcuda, through ctypes), for what pycuda
cannot do.

- `driver_cuda_version()`: the newest CUDA the installed driver supports, without
  pycuda, TensorRT or PyTorch, so `streamfix info` can say which TensorRT build fits
  even when none of those load.
- `pop_current_context()`: pycuda can release the primary context but never pop it
  (it calls `cuDevicePrimaryCtxRelease`, which CUDA documents never pops the
  context, and pycuda has no pop for a context outside its own stack), so
  cuda_buffers.py pops it here before releasing it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


class DriverError(RuntimeError):
    """libcuda is missing or refused a call."""


@functools.lru_cache(maxsize=1)
def _libcuda() -> ctypes.CDLL | None:
    for name in ("libcuda.so.1", ctypes.util.find_library("cuda"), "nvcuda.dll"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def driver_cuda_version() -> tuple[int, int] | None:
    """(major, minor) of the CUDA version the driver supports, e.g. (12, 8), or None
    when there is no NVIDIA driver here. `cuDriverGetVersion` needs no cuInit."""
    lib = _libcuda()
    if lib is None:
        return None
    version = ctypes.c_int(0)
    if lib.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def pop_current_context() -> None:
    """Pop the calling thread's current CUDA context (`cuCtxPopCurrent`)."""
    lib = _libcuda()
    if lib is None:
        raise DriverError("libcuda is not loadable, so no context can be current")
    popped = ctypes.c_void_p()
    status = lib.cuCtxPopCurrent_v2(ctypes.byref(popped))
    if status != 0:
        raise DriverError(f"cuCtxPopCurrent failed with CUDA error {status}")
