"""Restoring decoded frames in their own pixel format: the Restorer.

YUV-native: the model sees the luma plane the decoder produced (8-bit or 10-bit,
scaled to [0, 1]) plus its conditioning plane, and its output goes back into the luma
plane of a new frame of the same format. Chroma is copied unchanged
(`chroma="passthrough"`) or restored plane by plane with the same luma model
(`chroma="luma_model"`). There is no YUV -> RGB -> YUV round trip, so colours cannot
shift and pixels the model leaves alone stay bit-identical.

How each pixel format becomes planes and back: frame_planes.py. What the model's
input holds: conditioning.py. How strongly a frame was compressed: strength.py.

Tiers: a model NAME may have a bundled light tier NAME-lite (the same topology,
narrower). `tier="auto"` restores with the full model unless the caller asks for the
light one (live mode does, for frames the full model cannot finish in time).

The Restorer holds no threads and no queues: the pipeline, `streamfix eval` and
embedders call it from whatever thread they like, one at a time (it is not
thread-safe: give each thread or stream its own Restorer; several Restorers can share
one engine through streamfix.engines.shared.SharedEngine). `streamfix.restore_stream`
runs it on a worker thread with bounded queues (serve/frame_stream.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from streamfix.core.options import CHROMA_MODES, ENSEMBLE_MODES, LIGHT_SUFFIX, TIERS, gate_qp
from streamfix.restore import conditioning
from streamfix.restore.frame_planes import SplitFrame, condition_for_plane, split_frame
from streamfix.restore.strength import StreamStrength, Strength, strength_of_frame
from streamfix.restore.conditioning import model_input, needs_restoring, plane_to_unit, unit_to_plane
from streamfix.media.frame_fields import copy_frame_fields
from streamfix.engines.ensemble import EnsembleEngine
from streamfix.core.weights import ModelInfo, bundled_paths, load_model

JPEG_MODEL = "jpeg-y-blind"
VIDEO_MODEL = "video-x264-qp"
# Decoders whose frames are JPEG images: their artifacts are JPEG's 8x8 blocks and
# their strength is the quantization table, which the JPEG model is conditioned on.
JPEG_CODECS = frozenset({"mjpeg", "jpeg", "jpegls"})


def choose_model(video: Any) -> str:
    """The bundled model for an input (a VideoInfo): JPEG for JPEG/MJPEG and stills,
    the QP-conditioned video model for everything else."""
    if video.codec_name in JPEG_CODECS or getattr(video, "is_still", False):
        return JPEG_MODEL
    return VIDEO_MODEL


@dataclass(slots=True)
class _Job:
    """One plane of one frame, ready for the engine."""

    frame: int
    plane: int
    bits: int
    input: np.ndarray  # (1 + cond) x H x W float32


class Restorer:
    """Restores frames with a CAR-DRN model through the best available engine.

    `model`: a bundled name or a weights file; None picks per input (`prepare`) or,
    without a VideoInfo, per frame from what is known about it (a JPEG quality means
    the JPEG model). `jpeg_quality` is the quality assumed for inputs that carry none
    (e.g. a PNG saved from a JPEG); None leaves such frames untouched.

    `engine` is a backend name ("auto", "torch", ...) or a ready engine object that
    also names its model in `info` (a streamfix.engines.shared.SharedEngine): the
    Restorer then uses that engine and model and leaves the engine's lifetime to its
    owner.

    Use as a context manager; `close()` releases the engines it opened.
    """

    def __init__(self, model: str | Path | None = None, *, engine: str | Any = "auto", device: str = "auto",
                 batch: int = 4, tile: int = 0, chroma: str = "passthrough",
                 jpeg_quality: int | None = None, engine_configs: Mapping[str, Any] | None = None,
                 ensemble: str = "stills", tier: str = "auto", precision: str = "auto",
                 gate: str | float = "auto", memory_mb: int | None = None, measure_engines: bool = True,
                 log: Callable[[str], None] = print) -> None:
        # The clean-frame gate (core/options.py gate_qp): raises on a bad setting.
        self._clean_qp = gate_qp(gate, conditioning.CLEAN_QP)
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
        if ensemble not in ENSEMBLE_MODES:
            raise ValueError(f"ensemble must be one of {ENSEMBLE_MODES}, got {ensemble!r}")
        if chroma not in CHROMA_MODES:
            raise ValueError(f"chroma must be one of {CHROMA_MODES}, got {chroma!r}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self._given_engine = None if isinstance(engine, str) else engine
        if self._given_engine is not None:
            model, engine = self._given_engine.info.name, self._given_engine.name
        self._choice = model
        self._engine_name, self._device, self._batch, self._tile = engine, device, batch, tile
        self._precision = precision  # auto, fp32, bf16, int8 (engines/precision.py)
        self._memory_mb = memory_mb  # per engine call, MiB; None: the device's default (engines/tiling.py)
        self._measure_engines = measure_engines  # False: engine auto does not stop to time (live)
        self.chroma = chroma
        # "stills": chroma through the luma model for still pictures only. Measured
        # (benchmarks/chroma.md): +0.7 dB Cb/Cr on JPEG q10 but only +0.13-0.16 dB on
        # x264 CRF 35-40 for +50% compute, so video keeps its chroma by default.
        self._chroma_now = chroma == "luma_model"
        self.jpeg_quality = jpeg_quality
        # Self-ensemble (8 flips/rotations averaged, engines/ensemble.py): +0.1 dB on
        # JPEG pictures for 8x the compute, so by default only for still pictures.
        self.ensemble = ensemble
        self._ensemble_now = ensemble == "always"
        self._engine_configs = dict(engine_configs or {})
        self._log = log
        self._loaded: dict[str, tuple[ModelInfo, Any, list]] = {}
        self._current: str | None = None
        # Decoders without a QP map get a frame QP estimated (HEVC: frame sizes, VP9 and
        # AV1: their frame quantizers); others (MPEG-2, VP8, ...) carry no strength and
        # pass through.
        self._strengths = StreamStrength()
        self._codec: str | None = None
        self._warned_unknown = False
        # "auto": the full model, and the light one where a caller with a deadline
        # asks for it (pipeline/live.py); "full"/"light": that model only.
        self.tier = tier
        self.restored = 0
        self.restored_by_tier = {"full": 0, "light": 0}
        self.passed_through = 0

    def __enter__(self) -> "Restorer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        loaded, self._loaded = self._loaded, {}
        for _, engine, _ in loaded.values():
            if engine is not self._given_engine:
                engine.__exit__(None, None, None)

    # --- model and engine ---------------------------------------------------------

    def prepare(self, video: Any) -> ModelInfo:
        """Pick (and load) the model for an input described by a VideoInfo."""
        self._strengths = StreamStrength(video.codec_name)
        self._codec = video.codec_name
        self._chroma_now = self.chroma == "luma_model" or (self.chroma == "stills" and bool(getattr(video, "is_still", False)))
        self._ensemble_now = self.ensemble == "always" or (self.ensemble == "stills" and bool(getattr(video, "is_still", False)))
        self._current = str(self._choice) if self._choice is not None else choose_model(video)
        return self._load(self._current)[0]

    def _load(self, name: str) -> tuple[ModelInfo, Any, list]:
        if name not in self._loaded and self._given_engine is not None:
            self._loaded[name] = (self._given_engine.info, self._given_engine, [])
        if name not in self._loaded:
            from streamfix.engines.precision import precision_of
            from streamfix.engines.select import choose  # engines pull in heavy optional packages

            model, info = load_model(name)
            engine, fallbacks = choose(model, info, engine=self._engine_name, device=self._device,
                                       max_batch=self._batch, tile=self._tile, log=self._log,
                                       configs=self._engine_configs, precision=self._precision,
                                       memory_mb=self._memory_mb, measure=self._measure_engines)
            engine.__enter__()
            self._loaded[name] = (info, engine, list(fallbacks))
            self._log(f"streamfix: model {info.name}, engine {engine.name} {precision_of(engine)} on {engine.device}")
        return self._loaded[name]

    def _model_for(self, strengths: Sequence[Strength], tier: str = "full") -> str:
        if self._current is None:
            if self._choice is not None:
                self._current = str(self._choice)
            else:
                jpeg = any(s.jpeg_quality is not None for s in strengths)
                self._current = JPEG_MODEL if jpeg else VIDEO_MODEL
        if tier == "light" and self.light_model is not None:
            return self.light_model
        return self._current

    @property
    def light_model(self) -> str | None:
        """The bundled light tier of the current model (NAME-lite), if there is one.
        A model given as a file or through a shared engine has none."""
        if self._current is None or self._given_engine is not None:
            return None
        name = self._current + LIGHT_SUFFIX
        return name if name in bundled_paths() else None

    @property
    def default_tier(self) -> str:
        """The tier used when the caller does not choose one: light only when the
        Restorer was made with tier="light" (and a light model exists)."""
        return "light" if self.tier == "light" and self.light_model is not None else "full"

    @property
    def batch_size(self) -> int:
        """Most planes per engine call."""
        return self._batch

    @property
    def info(self) -> ModelInfo | None:
        return self._loaded[self._current][0] if self._current in self._loaded else None

    @property
    def engine(self) -> Any:
        """The engine in use (after `prepare` or the first restore), else None."""
        return self._loaded[self._current][1] if self._current in self._loaded else None

    @property
    def fallbacks(self) -> list:
        return list(self._loaded[self._current][2]) if self._current in self._loaded else []

    def warm_up(self, width: int, height: int, tier: str = "full") -> float:
        """One engine call on a blank luma-sized input (after `prepare`); returns its
        seconds. Live mode runs it before the first frame: first calls are slow."""
        info, engine, _ = self._load(self._model_for([], tier))
        planes = info.model_args.channels + info.model_args.cond_channels
        start = time.perf_counter()
        engine.infer(np.zeros((1, planes, height, width), np.float32))
        return time.perf_counter() - start

    # --- restoring ----------------------------------------------------------------

    def restore(self, frame: av.VideoFrame, *, qp_map: np.ndarray | None = None,
                frame_qp: float | None = None, jpeg_quality: int | None = None) -> av.VideoFrame:
        """One frame, restored (or the same frame when there is nothing to restore).
        Without a `qp_map`, the one in the frame's side data is used, if any."""
        strength = strength_of_frame(frame, qp_map=qp_map, frame_qp=frame_qp, jpeg_quality=jpeg_quality)
        return self.restore_frames([frame], [strength])[0]

    def restore_batch(self, decoded: Sequence[Any]) -> list[av.VideoFrame]:
        """Frames from the reader (DecodedFrame: frame + side data), in order."""
        return self.restore_frames([d.frame for d in decoded], [self.strength_of(d) for d in decoded])

    def strength_of(self, decoded: Any) -> Strength:
        """A DecodedFrame's strength (restore/strength.py; HEVC's QP is estimated)."""
        return self._strengths.of(decoded)

    def restore_frames(self, frames: Sequence[av.VideoFrame], strengths: Sequence[Strength], *,
                       tier: str | None = None) -> list[av.VideoFrame]:
        """Restore `frames`; frames the model should leave alone come back as they are.
        `tier`: "full" or "light" (None: `default_tier`); without a light model,
        "light" uses the full one."""
        if len(frames) != len(strengths):
            raise ValueError(f"{len(frames)} frames but {len(strengths)} strengths")
        if not frames:
            return []
        # Not `default_tier`: before the first call no model is chosen yet, so it would
        # say "full" and a tier="light" Restorer's first batch would use the full model.
        tier = tier or ("light" if self.tier == "light" else "full")
        name = self._model_for(strengths, tier)
        info, engine, _ = self._load(name)
        tier = "light" if name.endswith(LIGHT_SUFFIX) and name != self._current else "full"
        outputs: list[av.VideoFrame | None] = list(frames)
        splits: dict[int, SplitFrame] = {}
        jobs: list[_Job] = []
        for i, (frame, strength) in enumerate(zip(frames, strengths)):
            strength = self._with_defaults(info, strength)
            if strength is None:
                self.passed_through += 1
                continue
            split = split_frame(frame, chroma=self._chroma_now)
            splits[i] = split
            jobs.extend(self._jobs(i, info, split, strength))
        self._run(engine, jobs, splits)
        for i, split in splits.items():
            outputs[i] = copy_frame_fields(frames[i], split.join(split.planes))
            self.restored += 1
            self.restored_by_tier[tier] += 1
        return outputs  # type: ignore[return-value]

    def _with_defaults(self, info: ModelInfo, s: Strength) -> Strength | None:
        """`s` completed for `info`'s conditioning, or None if the frame stays as it is."""
        if info.conditioning == "jpeg_quality":
            quality = s.jpeg_quality if s.jpeg_quality is not None else self.jpeg_quality
            if quality is None:
                if not self._warned_unknown:
                    self._warned_unknown = True
                    self._log(f"streamfix: the input has no JPEG quality, so model {info.name} leaves it "
                              "untouched; give one with --jpeg-quality Q to restore it")
                return None
            return Strength(s.qp_map, s.frame_qp, quality)
        if s.qp_map is None and s.frame_qp is None and not self._warned_unknown:
            # Said once, so "0 restored" never comes without its reason (AV1, MPEG-2, VP8, ...).
            self._warned_unknown = True
            self._log(f"streamfix: {self._codec or 'this'} video carries no quantizer map that model {info.name} "
                      "can read and none can be estimated, so such frames pass through unrestored")
        if not needs_restoring(info, qp_map=s.qp_map, frame_qp=s.frame_qp, clean_qp=self._clean_qp,
                               reference_qp=s.reference_qp, gate_margin=s.gate_margin):
            return None
        return s

    def _jobs(self, index: int, info: ModelInfo, split: SplitFrame, s: Strength) -> list[_Job]:
        luma = split.planes[0]
        strength = {"qp_map": s.qp_map, "frame_qp": s.frame_qp, "jpeg_quality": s.jpeg_quality}
        jobs = [_Job(index, 0, split.bits, model_input(info, luma, split.bits, **strength))]
        if self._chroma_now and split.chroma:
            luma_cond = conditioning.condition_plane(info, *luma.shape, **strength)
            for p, plane in enumerate(split.planes[1:], start=1):
                cond = condition_for_plane(plane, luma_cond)
                parts = [plane_to_unit(plane, split.bits)] + ([cond] if cond is not None else [])
                jobs.append(_Job(index, p, split.bits, np.stack(parts).astype(np.float32)))
        return jobs

    def _run(self, engine: Any, jobs: list[_Job], splits: dict[int, SplitFrame]) -> None:
        """Infer every job, grouped by plane size. How many planes go into one call
        to the backend is decided in one place, the wrapper that engines.select.choose
        puts around every engine (engines/tiling.py: at most `batch` planes and a pixel
        budget per call), so the whole group is handed over at once."""
        if self._ensemble_now:
            engine = EnsembleEngine(engine)  # the inner engine is already entered
        by_shape: dict[tuple[int, ...], list[_Job]] = {}
        for job in jobs:
            by_shape.setdefault(job.input.shape, []).append(job)
        for group in by_shape.values():
            result = engine.infer(np.stack([job.input for job in group]))
            for job, out in zip(group, result):
                splits[job.frame].planes[job.plane] = unit_to_plane(out[0], job.bits)
