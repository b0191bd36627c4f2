"""The configuration of `streamfix run`: strict YAML -> frozen dataclasses.

`configs/default.yaml` spells out the defaults below (a test keeps the two equal);
presets in `configs/` change a few of them. Precedence: dataclass defaults < the
YAML file given with `--config` < command-line flags.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from streamfix.core.options import (MAX_BATCH, MAX_TILE, MIN_TILE, BACKEND_NAMES, ChromaMode, EngineName,
                                    EnsembleMode, GateName, PrecisionName, TierName, gate_qp)
from streamfix.core.yaml_config import ConfigError, from_dict, load_yaml
from streamfix.media.writer import EncodeConfig
from streamfix.pipeline.scale_config import ScaleConfig


def _restore_only() -> tuple[dict[str, Any], ...]:
    return ({"type": "restore"},)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    """Sizes of the bounded queues between the pipeline's threads.

    Together with the batch size they bound the frames in memory, whatever the input's
    length: about decoded + (batches + processed + 2) x batch frames.
    """

    decoded: int = 16  # decoded frames and copied packets waiting to be batched
    batches: int = 2  # batches waiting for the process stage
    processed: int = 2  # processed batches waiting for the encoder

    def __post_init__(self) -> None:
        for name in ("decoded", "batches", "processed"):
            if getattr(self, name) < 1:
                raise ValueError(f"queues.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressConfig:
    # auto: a bar when stderr is a terminal, plain lines otherwise; off: nothing.
    mode: Literal["auto", "bar", "lines", "off"] = "auto"
    interval_s: float = 5.0  # seconds between plain lines

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError(f"progress.interval_s must be positive, got {self.interval_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputConfig:
    """How the input is opened (files need none of it; pipes and network streams may)."""

    format: str | None = None  # demuxer, e.g. mpegts, flv, matroska; null: detected
    # FFmpeg protocol and demuxer options, e.g. {listen: 1, fifo_size: 100000}
    options: dict[str, Any] = field(default_factory=dict)
    # A live input silent for this long has ended (or reconnects, see below).
    timeout_s: float = 15.0
    # How often a network input is opened again after it stalled, broke or ended.
    reconnect: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.timeout_s < math.inf:
            raise ValueError(f"input.timeout_s must be a positive number of seconds, got {self.timeout_s}")
        if self.reconnect < 0:
            raise ValueError(f"input.reconnect must be 0 or more, got {self.reconnect}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputConfig:
    """How the output is opened: the container for pipes and URLs, FFmpeg options."""

    format: str | None = None  # muxer, e.g. mpegts, matroska, flv, nut; null: from the suffix or URL
    # FFmpeg protocol and muxer options, e.g. {listen: 1} to serve tcp:// to one client
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfig:
    """Live mode: frames restored only where they make their deadline (streamfix/pipeline/live.py)."""

    mode: Literal["auto", "on", "off"] = "auto"  # auto: on for pipes and network inputs
    # Most time a frame may spend between decoding and encoding; frames the model
    # cannot restore within it pass through unrestored.
    max_latency_ms: float = 1000.0

    def __post_init__(self) -> None:
        if not 0 < self.max_latency_ms < math.inf:
            raise ValueError(f"live.max_latency_ms must be a positive number of milliseconds, got {self.max_latency_ms}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    # A bundled model name or a weights file; null picks one per input (JPEG model
    # for JPEG/MJPEG and stills, the QP-conditioned video model otherwise).
    model: str | None = None
    engine: EngineName = "auto"
    # auto, fp32, bf16, int8 (core/options.py). auto with engine auto on a CPU: the
    # fastest engine and precision that keep the restoration gain, measured once.
    precision: PrecisionName = "auto"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    batch: int = 4  # frames per engine call
    # A partial batch waits at most this long for more frames, so batching never
    # adds more than this to a frame's latency.
    batch_timeout_ms: float = 20.0
    tile: int = 0  # tile side in pixels; 0: whole frames unless too large for memory
    # Working memory of one engine call in MiB (the network's activations): frames per
    # call and tiles are cut to fit. null: 448 on the CPU (a whole run then peaks under
    # 1 GB at 720p, 1.5 GB at 1080p); on a GPU no budget, 32 Mpx per call.
    memory_budget_mb: int | None = None
    # passthrough: chroma copied unchanged; luma_model: chroma planes restored by the
    # luma model too.
    # stills: luma_model for still pictures, passthrough for video (benchmarks/chroma.md).
    chroma: ChromaMode = "stills"
    # Self-ensemble (average over the 8 flips/rotations): +0.1 dB for 8x the compute.
    # stills: still pictures only; always; never.
    ensemble: EnsembleMode = "stills"
    # Model tier: full, light (the bundled NAME-lite: same network, ~9x less compute),
    # or auto: the full model, and in live mode the light one for frames the full
    # model cannot finish before their deadline.
    tier: TierName = "auto"
    # The clean-frame gate of the video model: auto (frames under mean QP 24, the
    # calibrated point where its gain turns positive, pass through), off (restore every
    # frame whose quantizer is known), or a mean QP of your own. For encoders whose QP
    # statistics differ from x264's (hardware encoders: flat or frame-type offset QPs).
    gate: GateName | float = "auto"
    # JPEG quality assumed for inputs that carry none (a PNG saved from a JPEG);
    # null leaves such inputs untouched.
    jpeg_quality: int | None = None
    # Per-backend options, e.g. {onnxruntime: {threads: 2}} (see each engine's config).
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    queues: QueueConfig = field(default_factory=QueueConfig)
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    stages: tuple[dict[str, Any], ...] = field(default_factory=_restore_only)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)  # segments and workers (scale_config.py)

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch must be from 1 to {MAX_BATCH} frames, got {self.batch}")
        if not 0 <= self.batch_timeout_ms < math.inf:
            raise ValueError(f"batch_timeout_ms must be 0 or more, got {self.batch_timeout_ms}")
        if self.tile != 0 and not MIN_TILE <= self.tile <= MAX_TILE:
            raise ValueError(f"tile must be 0 (whole frames) or from {MIN_TILE} to {MAX_TILE} pixels, got {self.tile}")
        gate_qp(self.gate, 0.0)  # raises ValueError on a bad value
        if self.memory_budget_mb is not None and self.memory_budget_mb < 1:
            raise ValueError(f"memory_budget_mb must be at least 1 (MiB) or null, got {self.memory_budget_mb}")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be between 1 and 100, got {self.jpeg_quality}")
        unknown = sorted(set(self.engines) - set(BACKEND_NAMES))
        if unknown:
            raise ValueError(f"engines: unknown engine {unknown[0]!r} (known: {', '.join(BACKEND_NAMES)})")
        for i, spec in enumerate(self.stages):
            if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
                raise ValueError(f"stages[{i}] needs a 'type', e.g. {{type: restore}}")


def load_run_config(path: str | Path | None = None) -> RunConfig:
    """The defaults, or the YAML file at `path` over them (unknown keys are errors)."""
    if path is None:
        return RunConfig()
    return from_dict(RunConfig, load_yaml(path), str(path))


NESTED = ("encode", "queues", "input", "output", "live", "progress", "scale")


def with_overrides(config: RunConfig, **changes: Any) -> RunConfig:
    """`config` with the non-None `changes` applied (command-line flags over the file),
    validated like the file. A nested section (encode, input, output, live, ...) takes
    a dict of its own non-None fields."""
    try:
        for section in NESTED:
            if isinstance(changes.get(section), dict):
                fields = {k: v for k, v in changes.pop(section).items() if v is not None}
                if fields:
                    changes[section] = dataclasses.replace(getattr(config, section), **fields)
        return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def engine_configs(config: RunConfig) -> dict[str, Any]:
    """The `engines:` mapping as each backend's config dataclass (checked strictly)."""
    from streamfix.engines.select import engine_config

    return {name: engine_config(name, data, f"engines.{name}") for name, data in config.engines.items()}
