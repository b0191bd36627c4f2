"""ONNX -> serialized TensorRT engine: strongly typed network, one optimization
profile, persisted timing cache, build progress, and the FP16 accuracy gate.

Precision lives in the graph (see onnx_export.py and onnx_mixed_precision.py): the
network is strongly typed, so no precision builder flag is set, which is the only
way that works on TensorRT 10 and 11 alike (11 removed those flags). TF32 is turned
off so that layers the graph keeps in FP32 really compute in FP32.

A first build takes minutes. Progress is logged through TensorRT's IProgressMonitor
(top-level phases and a line at most every `PROGRESS_EVERY_S` seconds) and, whatever
the version, by a heartbeat line every `HEARTBEAT_S` seconds. The builder's own log
goes to a file next to the engine; a failed build names that file.

The caller (tensorrt_engine.py) runs all of this with the CUDA context current.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator

import numpy as np
import onnx

from streamfix.core.network import CARDRN

from streamfix.engines.cuda_buffers import CudaPipeline
from streamfix.engines.engine_cache import Built
from streamfix.engines.fp16_gate import VARIANTS, ladder, output_psnr, run_gate
from streamfix.engines.onnx_export import export_onnx
from streamfix.engines.onnx_mixed_precision import with_fp32_tail
from streamfix.engines.trt_runner import TrtRunner
from streamfix.engines.trt_shapes import ShapeProfile
from streamfix.engines.trt_version import has_progress_monitor, network_flags, trt_version

Log = Callable[[str], None]
HEARTBEAT_S = 30.0
PROGRESS_EVERY_S = 10.0


class BuildFailed(RuntimeError):
    """TensorRT could not parse or build; the message names the builder log."""


class BuildCancelled(BuildFailed):
    """The engine was closed while one of its builds was running."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRequest:
    label: str  # names the engine in log lines
    precision: str  # "fp16" (gated ladder) or "fp32"
    profile: ShapeProfile
    planes: int  # input planes (image + conditioning)
    workspace_mib: int
    opt_level: int
    min_psnr_db: float
    log_path: Path
    cancel: threading.Event | None = None  # set: stop the build at the next step

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


class GraphSource:
    """The model's ONNX graphs for each gate variant, exported once into a temp dir."""

    def __init__(self, model: CARDRN) -> None:
        self.model = model
        self._dir = tempfile.TemporaryDirectory(prefix="streamfix-onnx-")
        self._paths: dict[bool, Path] = {}
        self._lock = threading.Lock()  # background builds ask from their own threads

    def path(self, fp16: bool) -> Path:
        with self._lock:
            if fp16 not in self._paths:
                name = "model_fp16.onnx" if fp16 else "model_fp32.onnx"
                self._paths[fp16] = export_onnx(self.model, Path(self._dir.name) / name, fp16=fp16)
            return self._paths[fp16]

    def variant(self, name: str) -> bytes:
        """Serialized graph of gate variant `name` (fp16, fp16-tail1, ..., fp32)."""
        convs = VARIANTS[name]
        if convs is None:
            return self.path(False).read_bytes()
        if convs == 0:
            return self.path(True).read_bytes()
        return with_fp32_tail(onnx.load(str(self.path(True))), convs).SerializeToString()

    def close(self) -> None:
        self._dir.cleanup()


_LOGGER = None
_LOGGER_LOCK = threading.Lock()


def trt_logger(trt: ModuleType):
    """The process's one TensorRT logger.

    TensorRT keeps the first logger it is given as its global one (later builders and
    runtimes with another logger get a warning, and part of their messages still go
    to the first), so a logger per build could be used after it was freed. Instead
    one logger lives for the whole process and routes messages: INFO and above to the
    log files of the builds running now (`capture`), errors also to those builds'
    log callables, or to stderr when no build is running.
    """
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None:
            _LOGGER = _make_routing_logger(trt)
        return _LOGGER


def _make_routing_logger(trt: ModuleType):
    severity = trt.ILogger.Severity
    errors = (severity.ERROR, severity.INTERNAL_ERROR)
    to_file = (*errors, severity.WARNING, severity.INFO)

    class _RoutingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._captures: dict[int, tuple] = {}  # id -> (file, log)

        def log(self, level, msg) -> None:  # called from TensorRT's threads too
            with self._lock:
                captures = list(self._captures.values())
                for file, _ in captures:
                    if level in to_file:
                        file.write(f"[{level.name}] {msg}\n")
                        file.flush()
            if level in errors:
                for _, log in captures or [(None, lambda line: print(line, file=sys.stderr))]:
                    log(f"TensorRT: {msg}")

        @contextmanager
        def capture(self, path: Path, log: Log) -> Iterator[None]:
            with open(path, "a", encoding="utf-8") as file:
                with self._lock:
                    self._captures[id(file)] = (file, log)
                try:
                    yield
                finally:
                    with self._lock:
                        del self._captures[id(file)]

    return _RoutingLogger()


def make_progress_monitor(trt: ModuleType, label: str, log: Log, cancel: threading.Event | None = None):
    """An IProgressMonitor that logs top-level phases and throttled step counts, and
    cancels the build once `cancel` is set (the engine is closing)."""

    class _Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                log(f"building {label}: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            with self._lock:
                now = time.monotonic()
                if now - self._last >= PROGRESS_EVERY_S:
                    self._last = now
                    log(f"building {label}: {phase_name}, step {step + 1}")
            return cancel is None or not cancel.is_set()  # False cancels the build

        def phase_finish(self, phase_name) -> None:
            pass

    return _Progress()


class _Heartbeat:
    """Logs 'still building' every `every` seconds until stopped."""

    def __init__(self, label: str, log: Log, every: float = HEARTBEAT_S) -> None:
        self._stop = threading.Event()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(label, log, every), daemon=True,
                                        name="trt-build-heartbeat")

    def _run(self, label: str, log: Log, every: float) -> None:
        while not self._stop.wait(every):
            log(f"building {label}: {time.monotonic() - self._start:.0f} s so far")

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _configure(trt: ModuleType, builder, network, request: BuildRequest, timing_cache: bytes, log: Log):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, request.workspace_mib << 20)
    config.builder_optimization_level = request.opt_level
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    lo, opt, hi = request.profile.dims(request.planes)
    profile.set_shape(name, lo, opt, hi)
    if config.add_optimization_profile(profile) < 0:
        raise BuildFailed(f"TensorRT refused the optimization profile {request.profile.label()} for input {name!r}")
    cache = None
    if timing_cache:
        try:
            cache = config.create_timing_cache(timing_cache)
        except Exception:  # a damaged file: the bindings raise rather than return None
            cache = None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        if timing_cache:
            log("the stored TensorRT timing cache is damaged or for another GPU/version; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return config


def build_serialized(trt: ModuleType, onnx_bytes: bytes, request: BuildRequest, timing_cache: bytes,
                     log: Log) -> tuple[bytes, bytes]:
    """Build one engine from a serialized ONNX graph; returns (engine, timing cache)."""
    logger = trt_logger(trt)
    with logger.capture(request.log_path, log):
        logger.log(trt.ILogger.Severity.INFO, f"streamfix: building {request.label}, TensorRT {trt.__version__}")
        return _build(trt, logger, onnx_bytes, request, timing_cache, log)


def _build(trt: ModuleType, logger, onnx_bytes: bytes, request: BuildRequest, timing_cache: bytes,
           log: Log) -> tuple[bytes, bytes]:
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, trt_version(trt)))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildFailed(f"TensorRT could not parse the ONNX graph: {errors} (log: {request.log_path})")
    config = _configure(trt, builder, network, request, timing_cache, log)
    monitor = None
    if has_progress_monitor(trt):
        # TensorRT holds a raw pointer to the monitor: keep ours alive past the build.
        monitor = make_progress_monitor(trt, request.label, log, request.cancel)
        config.progress_monitor = monitor
    with _Heartbeat(request.label, log):
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        # A build that finished is kept even when the engine started closing just after
        # (the next run would otherwise spend the same minutes again); only a build
        # that the progress monitor stopped is "cancelled".
        if request.cancelled():
            raise BuildCancelled(f"the build of {request.label} was cancelled")
        raise BuildFailed(f"TensorRT could not build {request.label}; the builder log is {request.log_path}")
    engine = memoryview(serialized).tobytes()
    timing = memoryview(config.get_timing_cache().serialize()).tobytes()
    del monitor  # only now: the builder is done calling it
    return engine, timing


def measure_psnr(trt: ModuleType, logger, engine: bytes, frames: np.ndarray, reference: np.ndarray) -> float:
    """Run `frames` through `engine` (batches up to its max) and return the worst
    frame's PSNR against `reference`. Needs the CUDA context current."""
    runner = TrtRunner(trt, logger, engine)
    pipe = CudaPipeline(slots=1)
    try:
        outs = []
        step = runner.profile.batch[2]
        for start in range(0, len(frames), step):
            batch = np.ascontiguousarray(frames[start:start + step], dtype=runner.input_dtype)
            out_shape = runner.output_shape(batch.shape)
            slot = pipe.slots[0]
            pipe.upload(slot, batch, out_shape, runner.output_dtype)
            runner.enqueue(slot.in_ptr, slot.out_ptr, pipe.compute_handle)
            pipe.download(slot)
            outs.append(pipe.wait(slot).astype(np.float32))
        return output_psnr(reference, np.concatenate(outs))
    finally:
        pipe.close()
        runner.close()


def build_with_gate(trt: ModuleType, request: BuildRequest, graphs: GraphSource, *,
                    timing_cache: bytes, measure: Callable[[bytes], float],
                    log: Log) -> tuple[Built, bytes]:
    """Build the request's precision ladder until the FP16 gate passes; returns the
    winning engine (with what to record in the sidecar) and the updated timing cache."""
    started = time.monotonic()
    timing = [timing_cache]
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    request.log_path.write_text("")  # the log of this build only, all its variants

    def try_variant(variant: str) -> tuple[float, bytes]:
        if request.cancelled():  # closing: start no further variant of the ladder
            raise BuildCancelled(f"the build of {request.label} was cancelled before its {variant} variant")
        log(f"building TensorRT engine {request.label} ({variant}); the first build on a GPU takes minutes")
        engine, timing[0] = build_serialized(trt, graphs.variant(variant), request, timing[0], log)
        return measure(engine), engine

    result = run_gate(ladder(request.precision), try_variant, min_db=request.min_psnr_db, log=log)
    meta = {"gate": result.as_dict(), "variant": result.variant,
            "build_seconds": round(time.monotonic() - started, 1), "builder_log": str(request.log_path)}
    return Built(result.payload, meta), timing[0]
