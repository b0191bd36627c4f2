"""The ONNX Runtime engine: the fastest CPU backend, and a CUDA one where present.

The model is exported to ONNX once per (weights, precision, opset) and the file is
kept in a per-user cache (see `onnx_export.cached_onnx`), so later runs start at
once. On this project's 2-core x86 machines ONNX Runtime runs CAR-DRN about twice
as fast as eager PyTorch (benchmarks/cpu.md).

`onnxruntime` is imported inside functions: `streamfix info` and `choose()` must be
able to say "not installed" instead of failing at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from streamfix.core.errors import OptionError
from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import EngineUnavailable, check_counts, float32_batch
from streamfix.engines import devices
from streamfix.engines.int8_quantize import Int8Settings, int8_graph
from streamfix.engines.onnx_export import INPUT_NAME, OUTPUT_NAME, cached_onnx

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True, slots=True, kw_only=True)
class OnnxRuntimeConfig:
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    # Execution providers in order of preference; empty: chosen from `device`
    # (CUDA then CPU on a GPU, CPU alone otherwise).
    providers: tuple[str, ...] = ()
    # None: the FP16 graph on CUDA, FP32 on the CPU (ONNX Runtime's CPU float16
    # convolutions are slower than float32 ones).
    fp16: bool | None = None
    threads: int = 0  # intra-op threads; 0 lets ONNX Runtime use every core
    # Idle intra-op threads spin for a while before sleeping: lower latency per call,
    # but in the pipeline the spinning takes CPU from the decode and encode threads.
    spinning: bool = True
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    # ONNX Runtime's memory pattern: after the first run of a shape, one block planned
    # for all of its tensors. On the CPU its arena cannot reuse the first run's freed
    # pieces for that block, so every call shape held twice its activations (measured:
    # 556 MiB more on the second 1080x662 call); the speed is the same without it.
    # None: off on the CPU, on with CUDA.
    memory_pattern: bool | None = None
    cache_dir: Path | None = None  # exported graphs; None: <user cache>/streamfix/onnx
    opset: int = 17
    max_batch: int = 8
    # CPU only: the statically quantized graph (engines/int8_quantize.py), calibrated
    # on the built-in set; `--precision int8` sets it.
    int8: bool = False
    quantization: Int8Settings = field(default_factory=Int8Settings)  # how the int8 graph is made

    def __post_init__(self) -> None:
        if self.int8 and self.fp16:
            raise ValueError("int8 and fp16 exclude each other")
        check_counts(threads=self.threads, max_batch=self.max_batch)


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailable(
            f"the onnxruntime package cannot be imported ({exc}); install it with "
            "`pip install onnxruntime` (or onnxruntime-gpu for CUDA)"
        ) from None
    return onnxruntime


def resolve_device(device: str) -> str:
    """The device for ONNX Runtime: "auto" needs its CUDA provider too (engines/devices.py)."""
    return devices.resolve_device(
        device, backend_gpu=lambda: CUDA_PROVIDER in _import_onnxruntime().get_available_providers())


def check_available(config: OnnxRuntimeConfig) -> None:
    """Raise EngineUnavailable when ONNX Runtime cannot run on `config.device` here."""
    ort = _import_onnxruntime()
    try:
        device = resolve_device(config.device)
    except OptionError as exc:  # an unknown name: this backend cannot run there
        raise EngineUnavailable(str(exc)) from None
    if device == "cpu":
        return
    if config.int8:
        raise EngineUnavailable("int8 graphs run on the CPU only; use --device cpu, or fp32 on the GPU")
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise EngineUnavailable(
            f"onnxruntime {ort.__version__} has no CUDA provider (a CPU-only package); "
            "install onnxruntime-gpu instead of onnxruntime, or use --device cpu"
        )


class OnnxRuntimeEngine:
    """Runs the exported CAR-DRN graph in an ONNX Runtime InferenceSession."""

    name = "onnxruntime"

    def __init__(self, model: CARDRN, info: ModelInfo, config: OnnxRuntimeConfig = OnnxRuntimeConfig()) -> None:
        check_available(config)
        self.info = info
        self.config = config
        self.device = resolve_device(config.device)
        self.fp16 = self.device.startswith("cuda") if config.fp16 is None else config.fp16
        self.precision = "int8" if config.int8 else "fp16" if self.fp16 else "fp32"
        self._model = model
        self._in_channels = model.args.channels + model.args.cond_channels
        self._session = None
        self.onnx_path: Path | None = None

    def _providers(self) -> list:
        if self.config.providers:
            return list(self.config.providers)
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]
        return [CPU_PROVIDER]

    def __enter__(self) -> "OnnxRuntimeEngine":
        ort = _import_onnxruntime()
        cache_dir = self.config.cache_dir or devices.cache_root() / "onnx"
        self.onnx_path = self._graph(cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.threads
        pattern = self.config.memory_pattern
        options.enable_mem_pattern = self.device.startswith("cuda") if pattern is None else pattern
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.config.spinning else "0")
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.config.graph_optimization]
        session = ort.InferenceSession(str(self.onnx_path), options, providers=self._providers())
        if self.device.startswith("cuda") and CUDA_PROVIDER not in session.get_providers():
            # ONNX Runtime silently falls back to the CPU when the CUDA provider's
            # libraries (CUDA, cuDNN) fail to load; running 50x slower unannounced
            # would be worse than refusing.
            raise EngineUnavailable(
                "onnxruntime's CUDA provider did not load (CUDA or cuDNN libraries missing "
                "or mismatched; see onnxruntime's messages above); use --device cpu or fix the CUDA install"
            )
        self._session = session
        return self

    def _graph(self, cache_dir: Path) -> Path:
        if not self.config.int8:
            return cached_onnx(self._model, self.info.name, cache_dir, fp16=self.fp16, opset=self.config.opset)
        return int8_graph(self._model, self.info, cache_dir, self.config.quantization, opset=self.config.opset)

    def __exit__(self, *exc: object) -> None:
        self._session = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise RuntimeError("OnnxRuntimeEngine.infer called outside `with engine:`")
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: float32_batch(batch, self._in_channels)})[0]
