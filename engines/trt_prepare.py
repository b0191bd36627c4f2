"""The TensorRT engine for one shape profile: from the cache, or built and gated.

`ProfilePreparer.prepare(profile)` computes the cache key (exporting the ONNX graph
the first time), loads the cached engine or builds it (trt_build.py: strongly typed
network, FP16 gate ladder), and returns a TrtRunner for it. An engine TensorRT
refuses to load is removed from the cache and built once more.

Policies decided here (see docs/tensorrt.md):
- A build that runs while the standby serves frames on the same GPU (`gpu_busy`)
  times its kernels under load. Its timings are not written to the shared timing
  cache, so later builds do not inherit the noise, and its engine is stored marked
  `timed_under_load`. Opens in "wait" mode (an idle GPU: `streamfix engine build`,
  benchmarks) rebuild such an engine; standby opens load it as it is.
- Closing (`cancel` set) stops before the ONNX export, while waiting for another
  process's build lock, at TensorRT's next build step, and before another gate
  variant. A variant TensorRT has finished is still gated and stored: that costs
  seconds now and saves the next run minutes. The gate's FP32 reference is computed
  only once a variant is built, so a cancelled build never waits for it.

Everything here runs with the engine's CUDA context pushed by the caller, except
the key (CPU only).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

from streamfix.core.network import CARDRN
from streamfix.core.weights import ModelInfo

from streamfix.engines.base import EngineUnavailable
from streamfix.engines.cuda_buffers import DeviceFacts
from streamfix.engines.engine_cache import Built, EngineCache, EngineKey, Loaded, sha256_bytes
from streamfix.engines.fp16_gate import GateFailed, reference_output, sample_frames
from streamfix.engines.onnx_export import onnx_sha256
from streamfix.engines.trt_build import BuildFailed, BuildRequest, GraphSource, build_with_gate, measure_psnr, trt_logger
from streamfix.engines.trt_runner import EngineRejected, TrtRunner
from streamfix.engines.trt_shapes import ShapeProfile
from streamfix.engines.trt_version import trt_version


def gate_summary(meta: dict) -> str:
    """'fp16, 58.3 dB from the FP32 model' from a sidecar."""
    steps = meta.get("gate", {}).get("steps") or [{}]
    psnr = steps[-1].get("psnr_db", "?")
    psnr = f"{psnr:.1f}" if isinstance(psnr, float) else str(psnr)
    return f"{meta.get('variant', '?')}, {psnr} dB from the FP32 model"


def timed_under_load(meta: dict) -> str | None:
    """Why an entry should be rebuilt on an idle GPU, or None."""
    if meta.get("timed_under_load"):
        return "it was built while the GPU was also serving frames (noisy kernel timings)"
    return None


@dataclass(slots=True, kw_only=True)
class ProfilePreparer:
    trt: ModuleType
    cache: EngineCache
    graphs: GraphSource
    model: CARDRN
    info: ModelInfo
    facts: DeviceFacts
    config: object  # TensorRTConfig (not imported: tensorrt_engine.py imports this module)
    cancel: threading.Event
    log: Callable[[str], None]

    @property
    def planes(self) -> int:
        return self.model.args.channels + self.model.args.cond_channels

    def key_for(self, profile: ShapeProfile) -> EngineKey:
        c = self.config
        return EngineKey(
            model=self.info.name, onnx_sha256=onnx_sha256(self.graphs.path(c.fp16)),
            tensorrt=".".join(map(str, trt_version(self.trt))), gpu=self.facts.name,
            compute_capability=self.facts.compute_capability, precision=c.precision, profile=profile,
            workspace_mib=c.workspace_mib, opt_level=c.opt_level, min_psnr_db=c.min_psnr_db,
        )

    def stop_if_closing(self, profile: ShapeProfile) -> None:
        if self.cancel.is_set():
            raise EngineUnavailable(f"the build of {profile.label()} was cancelled: the engine is closing")

    def prepare(self, profile: ShapeProfile, *, gpu_busy: bool) -> tuple[TrtRunner, Loaded]:
        """The runner for `profile` and what the cache gave (call with the context pushed)."""
        self.stop_if_closing(profile)
        key = self.key_for(profile)  # exports the ONNX graph the first time
        rebuild_if = timed_under_load if self.config.while_building == "wait" and not gpu_busy else None
        for attempt in (1, 2):
            loaded = self.cache.get_or_build(key, lambda: self._build(key, profile, gpu_busy), log=self.log,
                                             cancel=self.cancel, rebuild_if=rebuild_if)
            try:
                runner = TrtRunner(self.trt, trt_logger(self.trt), loaded.engine)
            except EngineRejected as exc:
                if loaded.built or attempt == 2:  # a fresh build TensorRT refuses: no point retrying
                    raise EngineUnavailable(f"TensorRT cannot load {loaded.path}: {exc}") from None
                self.cache.invalidate(key, sha256_bytes(loaded.engine), str(exc), log=self.log)
                continue
            break
        under_load = timed_under_load(loaded.meta)
        self.log(f"TensorRT engine {'built' if loaded.built else 'loaded'}: {loaded.path.name} "
                 f"({gate_summary(loaded.meta)})" + (f"; {under_load}: `streamfix engine build` with the "
                                                     "same model, shapes and options rebuilds it on an idle GPU"
                                                     if under_load else ""))
        return runner, loaded

    def _build(self, key: EngineKey, profile: ShapeProfile, gpu_busy: bool) -> Built:
        self.stop_if_closing(profile)
        c = self.config
        request = BuildRequest(
            label=key.stem(), precision=c.precision, profile=profile, planes=self.planes,
            workspace_mib=c.workspace_mib, opt_level=c.opt_level, min_psnr_db=c.min_psnr_db,
            log_path=self.cache.log_path(key), cancel=self.cancel,
        )
        frames = sample_frames(self.planes, self.model.args.channels, profile.height[1], profile.width[1],
                               count=c.gate_frames)
        reference: list[np.ndarray] = []
        logger = trt_logger(self.trt)

        def measure(engine: bytes) -> float:
            if not reference:  # FP32 on the CPU: exact, and the GPU stays free
                reference.append(reference_output(self.model, frames))
            return measure_psnr(self.trt, logger, engine, frames, reference[0])

        try:
            built, timing = build_with_gate(self.trt, request, self.graphs, measure=measure, log=self.log,
                                            timing_cache=self.cache.read_timing_cache(key))
        except (BuildFailed, GateFailed) as exc:
            raise EngineUnavailable(str(exc)) from None
        if gpu_busy:
            return Built(built.engine, {**built.meta, "timed_under_load": True})
        self.cache.write_timing_cache(key, timing)
        return built
