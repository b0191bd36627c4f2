"""The TensorRT engine: CAR-DRN as FP16 TensorRT engines, one per stream resolution.

    engine = TensorRTEngine(model, info, TensorRTConfig(max_batch=8))
    with engine:                          # CUDA context, streams; prebuilds `shapes`
        out = engine.infer(batch)         # synchronous, as the Engine protocol says
        t1 = engine.submit(b1); t2 = engine.submit(b2)   # two batches in flight:
        out1 = engine.result(t1)                         # b2 computes while b1 downloads

First use of a resolution loads its engine from the cache (engine_cache.py) or
builds it (trt_build.py: ONNX -> strongly typed FP16 network -> FP16 accuracy gate),
which takes minutes the first time on a GPU. What happens meanwhile is
`while_building`:
- "standby" (default): frames are served by PyTorch FP16 on the same GPU while the
  build runs in a background thread; the engine switches to TensorRT as soon as the
  build is done. A failed build is logged once and the stream stays on PyTorch.
- "wait": `infer` blocks until the engine is ready (benchmarks, `streamfix engine
  build`, batch jobs that want every frame through TensorRT).

A background build shares the GPU with the standby, so its kernel timings are
noisy. Its timings are therefore not written to the shared timing cache (later
builds would inherit the noise), and its engine is cached marked
`timed_under_load`: a standby open loads it (a fast start matters more than the
best kernels), a "wait" open (an idle GPU: `streamfix engine build`, benchmarks)
rebuilds it.

Closing stops a build at its next step: TensorRT's progress monitor, the wait for
another process's build lock, and before each ONNX export or gate variant. A build
TensorRT has finished is still checked by the gate and stored (seconds), since the
next run would otherwise spend minutes on it again.

`proven` turns True when a batch has come back from TensorRT itself (not from the
standby); until then select.py's FallbackEngine may replace this engine.

Availability checks are in trt_available.py; buffers, streams and the CUDA context
in cuda_buffers.py (the only pycuda user); name-based execution in trt_runner.py;
version differences in trt_version.py.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Iterator, Literal

import numpy as np

from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import EngineUnavailable
from streamfix.engines.background_build import BackgroundBuilds
from streamfix.engines.cuda_buffers import CudaPipeline, DeviceFacts, PrimaryContext, probe
from streamfix.engines.engine_cache import EngineCache, EngineKey, LockWaitCancelled, default_cache_dir
from streamfix.engines.fallback import failure_reason
from streamfix.engines.fp16_gate import MIN_PSNR_DB
from streamfix.engines.trt_available import check_available, device_index, import_tensorrt
from streamfix.engines.trt_build import BuildCancelled, GraphSource
from streamfix.engines.trt_prepare import ProfilePreparer
from streamfix.engines.trt_runner import TrtRunner
from streamfix.engines.trt_shapes import ShapeProfile, exact_profile, parse_shapes, pick_profile

__all__ = ["TensorRTConfig", "TensorRTEngine", "check_available", "device_index", "import_tensorrt"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorRTConfig:
    device: str = "auto"  # "auto", "cuda" or "cuda:N" (choose() fills it in)
    fp16: bool = True  # False: FP32 engines (no gate needed)
    max_batch: int = 8  # every engine accepts batches of 1..max_batch
    shapes: tuple[str, ...] = ()  # built when the engine opens: "1920x1080", "64x64-1920x1088"
    cache_dir: Path = field(default_factory=default_cache_dir)
    workspace_mib: int = 4096  # builder scratch memory for tactics
    opt_level: int = 3  # builder optimization level 0-5 (higher: slower build, maybe faster engine)
    min_psnr_db: float = MIN_PSNR_DB  # FP16 gate: output PSNR vs the FP32 model
    gate_frames: int = 2
    in_flight: int = 2  # batches queued on the GPU at once (2: double buffering)
    while_building: Literal["standby", "wait"] = "standby"

    def __post_init__(self) -> None:
        for name, low in (("max_batch", 1), ("workspace_mib", 64), ("gate_frames", 1), ("in_flight", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not 0 <= self.opt_level <= 5:
            raise ValueError(f"opt_level must be 0..5, got {self.opt_level}")
        parse_shapes(",".join(self.shapes), self.max_batch)  # refuse a bad shape now, not mid-stream

    @property
    def precision(self) -> str:
        return "fp16" if self.fp16 else "fp32"


def _stderr(line: str) -> None:
    print(f"streamfix: {line}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Ticket:
    """A batch submitted to the GPU; `TensorRTEngine.result` turns it into output."""

    slot: int
    output: np.ndarray | None = None


class TensorRTEngine:
    name = "tensorrt"

    def __init__(self, model: CARDRN, info: ModelInfo, config: TensorRTConfig = TensorRTConfig(), *,
                 log: Callable[[str], None] = _stderr) -> None:
        self.model, self.info, self.config = model, info, config
        self.device = f"cuda:{device_index(config.device)}"
        self.planes = model.args.channels + model.args.cond_channels
        self._log = log
        self._lock = threading.Lock()  # guards _runners (background builds add to it)
        self._runners: list[TrtRunner] = []
        self._tickets: dict[int, Ticket] = {}
        self._next_slot = 0
        self._trt: ModuleType | None = None
        self._ctx: PrimaryContext | None = None
        self.facts: DeviceFacts | None = None
        self._preparer: ProfilePreparer | None = None
        self._pipe: CudaPipeline | None = None
        self._graphs: GraphSource | None = None
        self._standby = None
        self._open_builds()
        self.loaded: list[dict] = []  # sidecars of the engines in use (for `engine build`, benchmarks)
        self.proven = False  # a batch has come back from TensorRT itself

    # -- lifecycle -----------------------------------------------------------------
    def _open_builds(self) -> None:
        """Fresh for every `with`: a cancel left set, or a build left "failed" by the
        previous close, must not stop the builds of the next one."""
        self._cancel = threading.Event()
        self._builds: BackgroundBuilds[ShapeProfile] = BackgroundBuilds(
            lambda profile: self.prepare_profile(profile, gpu_busy=True), log=self._log, describe=ShapeProfile.label)

    def __enter__(self) -> "TensorRTEngine":
        check_available(self.config)
        self._open_builds()
        self.proven, self._next_slot = False, 0
        try:
            self._trt = import_tensorrt()
            self._ctx = PrimaryContext(device_index(self.config.device))
            with self._ctx:
                self.facts = probe(self._ctx.index)
                self._pipe = CudaPipeline(slots=self.config.in_flight)
            self._graphs = GraphSource(self.model)
            self._preparer = ProfilePreparer(trt=self._trt, cache=EngineCache(self.config.cache_dir),
                                             graphs=self._graphs, model=self.model, info=self.info,
                                             facts=self.facts, config=self.config, cancel=self._cancel,
                                             log=self._log)
            for profile in parse_shapes(",".join(self.config.shapes), self.config.max_batch):
                self.prepare_profile(profile)
        except BaseException as exc:
            self.__exit__(*sys.exc_info())
            if isinstance(exc, EngineUnavailable) or not isinstance(exc, Exception):
                raise
            raise EngineUnavailable(f"TensorRT could not open on {self.device}: {failure_reason(exc)}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        """Close everything; safe to call again, and after a failed `__enter__`."""
        self._cancel.set()  # a background build stops at its next step
        self._builds.join()
        self._close_standby()
        if self._ctx is not None:
            with self._ctx:
                if self._pipe is not None:
                    self._pipe.close()
                for runner in self._runners:
                    runner.close()
            self._pipe = None
            self._runners.clear()
            self._tickets.clear()
            context, self._ctx = self._ctx, None
            context.close()
        if self._graphs is not None:
            self._graphs.close()
            self._graphs = None

    def _close_standby(self) -> None:
        if self._standby is not None:
            self._standby.__exit__(None, None, None)
            self._standby = None

    # -- engines per shape ---------------------------------------------------------
    def key_for(self, profile: ShapeProfile) -> EngineKey:
        return self._preparer.key_for(profile)

    def _runner(self, batch: int, height: int, width: int) -> TrtRunner | None:
        with self._lock:
            profile = pick_profile([r.profile for r in self._runners], batch, height, width)
            return next((r for r in self._runners if r.profile == profile), None) if profile else None

    def ready(self, batch: int, height: int, width: int) -> bool:
        return self._runner(batch, height, width) is not None

    def wait_for_builds(self) -> None:
        """Block until every background build has finished (or failed)."""
        self._builds.join()

    def prepare(self, height: int, width: int) -> TrtRunner:
        """Load or build (blocking) the engine for frames of height x width."""
        return self._runner(1, height, width) or self.prepare_profile(
            exact_profile(height, width, self.config.max_batch))

    def prepare_profile(self, profile: ShapeProfile, *, gpu_busy: bool = False) -> TrtRunner:
        """Load the engine for `profile` from the cache, or build it (blocking; see
        trt_prepare.py). `gpu_busy`: the standby serves meanwhile (a background
        build). Any failure is an EngineUnavailable with a one-line reason."""
        with self._lock:
            existing = next((r for r in self._runners if r.profile == profile), None)
        if existing is not None:
            return existing
        try:
            with self._ctx:
                runner, loaded = self._preparer.prepare(profile, gpu_busy=gpu_busy)
        except EngineUnavailable:
            raise
        except (BuildCancelled, LockWaitCancelled) as exc:
            raise EngineUnavailable(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - nullptr factories, pycuda errors: say which, in one line
            raise EngineUnavailable(f"TensorRT failed to prepare the engine for {profile.label()}: "
                                    f"{failure_reason(exc)}") from exc
        with self._lock:
            self._runners.append(runner)
            self.loaded.append({**loaded.meta, "path": str(loaded.path), "built": loaded.built})
        return runner

    # -- running -------------------------------------------------------------------
    def submit(self, batch: np.ndarray) -> Ticket:
        """Queue `batch` (N <= max_batch) on the GPU and return at once (after the host
        copy into page-locked memory); up to `in_flight` batches run overlapped."""
        n, planes, height, width = self._check(batch)
        if n > self.config.max_batch:
            raise ValueError(f"batch of {n} frames is over max_batch {self.config.max_batch}")
        runner = self._runner(n, height, width) or self.prepare(height, width)
        with self._ctx:
            index = self._next_slot
            self._next_slot = (index + 1) % len(self._pipe.slots)
            self._collect(index)  # the slot's previous batch must be off the GPU first
            slot = self._pipe.slots[index]
            x = np.ascontiguousarray(batch, dtype=runner.input_dtype)
            out_shape = runner.output_shape(x.shape)
            self._pipe.upload(slot, x, out_shape, runner.output_dtype)
            runner.enqueue(slot.in_ptr, slot.out_ptr, self._pipe.compute_handle)
            self._pipe.download(slot)
        ticket = self._tickets[index] = Ticket(index)
        return ticket

    def _collect(self, index: int) -> None:
        ticket = self._tickets.pop(index, None)
        if ticket is not None and ticket.output is None:
            ticket.output = self._pipe.wait(self._pipe.slots[index]).astype(np.float32, copy=False)
            self.proven = True

    def result(self, ticket: Ticket) -> np.ndarray:
        """The output of a submitted batch (waits for its download)."""
        if ticket.output is None:
            with self._ctx:
                self._collect(ticket.slot)
        if ticket.output is None:
            raise RuntimeError("this ticket's slot was reused before its result was taken")
        return ticket.output

    def measure_compute(self, batch: np.ndarray, repeats: int = 10) -> float:
        """Seconds per batch of GPU compute alone: the batch is uploaded once and run
        `repeats` times back to back, nothing copied back (benchmarks compare this
        with the model's arithmetic ceiling)."""
        n, _, height, width = self._check(batch)
        runner = self._runner(n, height, width) or self.prepare(height, width)
        with self._ctx:
            index = self._next_slot
            self._collect(index)
            slot = self._pipe.slots[index]
            x = np.ascontiguousarray(batch, dtype=runner.input_dtype)
            self._pipe.upload(slot, x, runner.output_shape(x.shape), runner.output_dtype)
            runner.enqueue(slot.in_ptr, slot.out_ptr, self._pipe.compute_handle)  # warm-up
            self._pipe.sync_compute()
            start = time.perf_counter()
            for _ in range(repeats):
                runner.enqueue(slot.in_ptr, slot.out_ptr, self._pipe.compute_handle)
            self._pipe.sync_compute()
            return (time.perf_counter() - start) / repeats

    def infer_stream(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Outputs of `batches` in order, keeping `in_flight` of them on the GPU."""
        pending: list[Ticket] = []
        for batch in batches:
            if len(pending) == len(self._pipe.slots):
                yield self.result(pending.pop(0))
            pending.append(self.submit(batch))
        for ticket in pending:
            yield self.result(ticket)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n, _, height, width = self._check(batch)
        if not self.ready(min(n, self.config.max_batch), height, width) and self.config.while_building == "standby":
            profile = exact_profile(height, width, self.config.max_batch)
            state = self._builds.request(profile)
            if state != "ready":
                return self._serve_standby(batch, profile, state)
        if self._standby is not None and not self._builds.pending:
            self._log(f"TensorRT engine ready for {width}x{height}; switched from torch to tensorrt")
            self._close_standby()
        step = self.config.max_batch
        return np.concatenate(list(self.infer_stream(batch[i:i + step] for i in range(0, n, step))))

    def _serve_standby(self, batch: np.ndarray, profile: ShapeProfile, state: str) -> np.ndarray:
        if self._standby is None:
            from streamfix.engines.torch_engine import TorchConfig, TorchEngine

            why = ("its build failed (see above)" if state == "failed"
                   else "it is being prepared (a first build takes minutes)")
            self._log(f"no TensorRT engine for {profile.label()} yet: {why}; serving with torch FP16 on "
                      f"{self.device} meanwhile")
            self._standby = TorchEngine(self.model, self.info, TorchConfig(
                device=self.device, fp16=True, max_batch=self.config.max_batch)).__enter__()
        return self._standby.infer(batch)

    def _check(self, batch: np.ndarray) -> tuple[int, int, int, int]:
        if self._ctx is None:
            raise RuntimeError("TensorRTEngine used outside `with engine:`")
        if batch.ndim != 4 or batch.shape[1] != self.planes:
            raise ValueError(f"expected a batch N x {self.planes} x H x W, got shape {tuple(batch.shape)}")
        return batch.shape  # type: ignore[return-value]

    def memory(self) -> dict[str, int]:
        """Bytes in use: activation memory of the loaded engines, page-locked I/O
        buffers (the device copies are as large), and the device's free/total."""
        with self._lock:
            activations = sum(r.activation_bytes for r in self._runners)
        with self._ctx:
            free, total = self._ctx.memory()
        return {"activation_bytes": activations, "io_bytes": self._pipe.host_bytes,
                "device_free_bytes": free, "device_total_bytes": total}
