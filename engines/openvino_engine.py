"""The OpenVINO engine: Intel's CPU runtime, reading the same cached ONNX graphs.

Why a second CPU runtime: OpenVINO has its own convolution kernels and precision
handling. Its `bf16` inference-precision hint runs the convolutions on AVX-512 BF16
or AMX units where the CPU has them, and it runs the int8 QDQ graph
(engines/int8_quantize.py) with its own integer kernels. Which CPU engine and
precision is fastest differs between CPUs, so `--engine auto --precision auto`
measures (engines/auto_choice.py); benchmarks/cpu.md has the numbers.

Precision here is always what was asked for: fp32 sets the hint to f32 explicitly
(OpenVINO's default on a bf16-capable CPU is bf16), and bf16 on a CPU without bf16
units is refused rather than silently run in fp32.

`openvino` is an optional package (`pip install "streamfix[openvino]"`), imported
inside functions so that its absence is a reason in `choose()`, not an ImportError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines import devices
from streamfix.engines.base import EngineUnavailable, check_counts, float32_batch
from streamfix.engines.int8_quantize import Int8Settings, int8_graph
from streamfix.engines.onnx_export import cached_onnx

_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8 graphs keep their float parts in f32


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenVinoConfig:
    device: str = "auto"  # OpenVINO runs on the CPU here: "auto" or "cpu"
    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    threads: int = 0  # inference threads; 0 lets OpenVINO use every core
    cache_dir: Path | None = None  # ONNX graphs, shared with ONNX Runtime; None: <user cache>/streamfix/onnx
    opset: int = 17
    max_batch: int = 8
    quantization: Int8Settings = field(default_factory=Int8Settings)  # how the int8 graph is made

    def __post_init__(self) -> None:
        check_counts(threads=self.threads, max_batch=self.max_batch)


def _import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise EngineUnavailable(f"the openvino package cannot be imported ({exc}); install it with "
                                '`pip install "streamfix[openvino]"`') from None
    return openvino


def resolve_device(device: str) -> str:
    """OpenVINO's GPU plugin is for Intel GPUs: "auto" is the CPU, CUDA names are refused."""
    try:
        resolved = devices.resolve_device(device, backend_gpu=lambda: False)
    except OptionError as exc:
        raise EngineUnavailable(str(exc)) from None
    if resolved != "cpu":
        raise EngineUnavailable(f"OpenVINO runs on the CPU here, not on {resolved}; use --device cpu "
                                "or another engine")
    return resolved


def capabilities() -> list[str]:
    """What OpenVINO says this CPU computes natively (FP32, BF16, INT8, ...)."""
    return list(_import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def check_available(config: OpenVinoConfig) -> None:
    """Raise EngineUnavailable when OpenVINO cannot run `config` here."""
    _import_openvino()
    resolve_device(config.device)
    if config.precision == "bf16" and "BF16" not in capabilities():
        raise EngineUnavailable(
            f"this CPU has no bf16 units (OpenVINO lists {', '.join(capabilities())}), so bf16 would run "
            "as fp32; use --precision fp32 or int8")


class OpenVinoEngine:
    """Runs the cached ONNX graph (float32, or the int8 QDQ one) compiled by OpenVINO."""

    name = "openvino"

    def __init__(self, model: CARDRN, info: ModelInfo, config: OpenVinoConfig = OpenVinoConfig()) -> None:
        check_available(config)
        self.device = resolve_device(config.device)
        self.info, self.config, self.precision = info, config, config.precision
        self._model = model
        self._in_channels = model.args.channels + model.args.cond_channels
        self._request = None
        self.onnx_path: Path | None = None

    def _graph(self, cache_dir: Path) -> Path:
        if self.precision != "int8":
            return cached_onnx(self._model, self.info.name, cache_dir, opset=self.config.opset)
        return int8_graph(self._model, self.info, cache_dir, self.config.quantization, opset=self.config.opset)

    def __enter__(self) -> "OpenVinoEngine":
        ov = _import_openvino()
        self.onnx_path = self._graph(self.config.cache_dir or devices.cache_root() / "onnx")
        core = ov.Core()
        properties = {"INFERENCE_PRECISION_HINT": _HINTS[self.precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.config.threads:
            properties["INFERENCE_NUM_THREADS"] = self.config.threads
        compiled = core.compile_model(core.read_model(str(self.onnx_path)), "CPU", properties)
        self._request = compiled.create_infer_request()
        return self

    def __exit__(self, *exc: object) -> None:
        self._request = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._request is None:
            raise RuntimeError("OpenVinoEngine.infer called outside `with engine:`")
        # share_outputs=False (the default): the result is a copy, so the next call
        # cannot overwrite what the caller still holds.
        return np.asarray(self._request.infer({0: float32_batch(batch, self._in_channels)})[0])
