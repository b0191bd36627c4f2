"""The TensorRT version, and every place where 10.x and 11.x need different calls.

streamfix supports TensorRT 10.x and 11.x. Both build from a float16 ONNX graph into a
strongly typed network (no precision builder flags: 11.x removed them), and both run
by tensor name (`set_input_shape`, `set_tensor_address`, `execute_async_v3`). What
still differs is gated here, by `trt_version()`, and nowhere else:

- network creation: 10.x needs the STRONGLY_TYPED creation flag; 11.x is always
  strongly typed (the flag is accepted but ignored, and may go), so it gets no flags;
- the engine's activation memory: `device_memory_size` was replaced by
  `device_memory_size_v2` in 10.1 and removed in 11.0.

Everything takes the `tensorrt` module as an argument, so this file imports without
TensorRT installed and its decisions can be tested with a stand-in module.
"""

from __future__ import annotations

import re
from types import ModuleType

OLDEST = (10, 0)  # name-based I/O and execute_async_v3 arrived in 10.0
NEWEST_MAJOR = 11  # the newest major this code was written against


def parse_version(text: str) -> tuple[int, int, int]:
    """'10.13.0.35' or '11.0.0' -> (10, 13, 0); missing parts count as 0."""
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"not a TensorRT version: {text!r}")
    return tuple(int(part or 0) for part in match.groups())  # type: ignore[return-value]


def trt_version(trt: ModuleType) -> tuple[int, int, int]:
    """The (major, minor, patch) of an imported `tensorrt` module."""
    return parse_version(trt.__version__)


def unsupported_reason(version: tuple[int, ...]) -> str | None:
    """One line saying why this TensorRT cannot be used, or None if it can."""
    text = ".".join(map(str, version))
    if version[:2] < OLDEST:
        return (f"TensorRT {text} is too old (10.0 or newer needed); upgrade with: pip install -U "
                "'streamfix[tensorrt-cu12]' (or [tensorrt-cu13] for a CUDA 13 driver)")
    if version[0] > NEWEST_MAJOR:
        # TensorRT removes APIs only at major versions: an untested major may lack calls we make.
        return (f"TensorRT {text} is newer than this streamfix supports (10.x, 11.x); "
                "install a supported one: pip install 'streamfix[tensorrt-cu13]' (or [tensorrt-cu12])")
    return None


def network_flags(trt: ModuleType, version: tuple[int, ...]) -> int:
    """Creation flags for a strongly typed network on this version."""
    if version[0] >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def engine_device_memory(engine, version: tuple[int, ...]) -> int:
    """Bytes of activation memory an execution context of `engine` allocates."""
    if version[:2] >= (10, 1):
        return int(engine.device_memory_size_v2)
    return int(engine.device_memory_size)


def has_progress_monitor(trt: ModuleType) -> bool:
    """IProgressMonitor exists in every supported version, but a stripped-down build
    (e.g. the lean runtime) has no builder at all: check rather than assume."""
    return hasattr(trt, "IProgressMonitor") and hasattr(trt, "Builder")
