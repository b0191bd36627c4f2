"""Can TensorRT run here? One line saying why not, found without building anything.

`check_available()` is what `--engine auto` and `streamfix info` rely on, so it must
not say yes to an install that cannot work. In order, each step cheap:

1. the device is a CUDA device;
2. the installed TensorRT build is for a CUDA the driver supports, and only one
   build is installed (trt_install.py: package metadata, no import);
3. `tensorrt` imports and is a supported version (trt_version.py);
4. pycuda sees the device (cuda_buffers.py);
5. a `trt.Runtime` can be created on that device, in its primary context. This is
   the step a broken or mismatched install fails: the bindings import, but the
   library underneath returns NULL, which Python sees as
   `TypeError: pybind11::init(): factory function returned nullptr`.

Building, deserializing and running can still fail later; select.py's
FallbackEngine covers those.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from streamfix.engines import cuda_driver, trt_install
from streamfix.engines.base import EngineUnavailable
from streamfix.engines.cuda_buffers import CudaUnavailable, PrimaryContext, probe
from streamfix.engines.fallback import failure_reason
from streamfix.engines.trt_build import trt_logger
from streamfix.engines.trt_version import trt_version, unsupported_reason


def install_hint() -> str:
    """What to run to get a TensorRT that fits this machine's driver."""
    return trt_install.extra_for(cuda_driver.driver_cuda_version())


def device_index(device: str) -> int:
    """"auto"/"cuda" -> 0, "cuda:N" -> N; anything else cannot run TensorRT."""
    if device in ("auto", "cuda"):
        return 0
    kind, _, index = device.partition(":")
    if kind == "cuda" and index.isdigit():
        return int(index)
    raise EngineUnavailable(f"TensorRT runs on NVIDIA GPUs only, and the device is {device!r}"
                            + (" (no CUDA GPU seen)" if device == "cpu" else ""))


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt as trt
    except ImportError as exc:
        missing = getattr(exc, "name", None) in ("tensorrt", "tensorrt_bindings")
        raise EngineUnavailable("the tensorrt package is not installed: " + install_hint() if missing
                                else f"tensorrt is installed but does not load ({exc}); reinstall: "
                                     + install_hint()) from None
    except OSError as exc:  # its shared libraries are missing or of another CUDA
        raise EngineUnavailable(f"tensorrt is installed but its libraries do not load ({exc}); "
                                f"reinstall: {install_hint()}") from None
    reason = unsupported_reason(trt_version(trt))
    if reason:
        raise EngineUnavailable(reason)
    return trt


def probe_runtime(trt: ModuleType, index: int) -> None:
    """Create (and drop) a TensorRT runtime on device `index`; EngineUnavailable if
    TensorRT cannot. Costs a primary-context retain and a runtime: milliseconds."""
    context = None
    try:
        context = PrimaryContext(index)
        with context:
            runtime = trt.Runtime(trt_logger(trt))
            del runtime
    except Exception as exc:  # noqa: BLE001 - whatever the bindings raise, it means "not usable"
        version = ".".join(map(str, trt_version(trt)))
        raise EngineUnavailable(
            f"TensorRT {version} cannot create a runtime on cuda:{index} ({failure_reason(exc)}); "
            f"its libraries are probably for another CUDA than the driver's: reinstall with {install_hint()}"
        ) from None
    finally:
        if context is not None:
            context.close()


def check_available(config: Any) -> None:
    """Raise EngineUnavailable with a one-line reason unless TensorRT can run on
    `config.device` (see the module docstring)."""
    index = device_index(config.device)
    problem = trt_install.install_problem(trt_install.installed(), cuda_driver.driver_cuda_version())
    if problem:
        raise EngineUnavailable(problem)
    trt = import_tensorrt()
    try:
        probe(index)
    except CudaUnavailable as exc:
        raise EngineUnavailable(str(exc)) from None
    probe_runtime(trt, index)
