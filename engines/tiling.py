"""Run an engine on large frames piece by piece, with no seams, in bounded memory.

CAR-DRN is fully convolutional: an output pixel depends only on the input pixels
within its receptive field (29 x 29 for the shipped models: a radius of 14 px, see
`receptive_radius`). So a frame can be cut into overlapping windows, each window
restored on its own, and only the centre ("core") of each window kept. When every
core lies at least `radius` pixels inside its window (except along the frame's own
edges, where the window edge *is* the frame edge and both see the same zero
padding), the stitched result is the whole-frame result, not an approximation:
there is nothing to blend. The default margin of 16 px covers the 14 px radius with
a little to spare and keeps window sides multiples of 16 when the tile is.

Why tile at all: activations are 64 float32 channels per pixel (256 bytes), so one
4K frame needs ~2 GB per feature map, times the batch. `max_pixels` bounds the
pixels handed to the inner engine per call; frames bigger than that are tiled and
batches bigger than that are split.

A memory budget (`memory_mb`, the run config's `memory_budget_mb`) sets `max_pixels`
from what one call really holds at its peak: measured on the CPU engines, ~3.1
feature maps of float32 at once (about 800 bytes per pixel at 64 features; ONNX
Runtime's int8 graph ~540), see `call_bytes_per_pixel`. Under a budget the tiles are
planned for the frame (`plan_spans`): the fewest computed pixels, i.e. few full-height
strips rather than squares, since every cut recomputes 2 x margin pixels. All windows
of a frame have one shape, so a runtime that keeps memory per input shape (ONNX
Runtime's arena, OpenVINO) keeps one call's worth (ONNX Runtime on the CPU runs
without its memory pattern, which held a second copy: onnxruntime_engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from torch import nn

from streamfix.core.options import MIN_TILE
from streamfix.engines.base import Engine
from streamfix.engines.wrapper import EngineWrapper

DEFAULT_MARGIN = 16
# 8 Mpx is four 1080p frames: about 2 GB per 64-channel float32 feature map, which
# a desktop's RAM holds a few of. GPU engines run FP16 (half the bytes) on batches
# of up to 16 1080p frames (33 Mpx), which is what keeps a large GPU busy.
DEFAULT_MAX_PIXELS = 8_388_608
GPU_MAX_PIXELS = 33_554_432
DEFAULT_AUTO_TILE = 512

# The CPU's default budget per engine call. 448 MiB cuts 720p into two full-height
# strips (2.5% more pixels computed) and 1080p into 2 x 2 windows (4.7%) in float32,
# and 720p in two, 1080p in three strips in int8; a whole run then peaks under 1 GB
# at 720p and 1.5 GB at 1080p (benchmarks/cpu.md). 576 left 720p int8 whole, at 1006 MiB.
DEFAULT_CPU_MEMORY_MB = 448
# Peak bytes of one call per pixel and per feature channel of the widest layer, measured
# (VmHWM growth of one call, benchmarks/cpu.md): float32 graphs hold ~3.1 maps at once
# (the local skip's input, a convolution's input and output): ONNX Runtime 803 B/px at
# 64 features, OpenVINO 793 (its int8 graph too: float32 between layers), torch 768;
# ONNX Runtime's int8 graph keeps uint8 activations between its layers: 544.
BYTES_PER_FEATURE_PIXEL = {("onnxruntime", "int8"): 8.5}
DEFAULT_BYTES_PER_FEATURE_PIXEL = 12.75


def max_pixels_for(device: str) -> int:
    return GPU_MAX_PIXELS if device.startswith("cuda") else DEFAULT_MAX_PIXELS


def budget_for(device: str, memory_mb: int | None) -> int | None:
    """The memory budget (MiB) per engine call: `memory_mb` when given, else the CPU's
    default; None (no budget: `max_pixels_for`) on a GPU unless one is given."""
    if memory_mb is not None:
        return memory_mb
    return None if device.startswith("cuda") else DEFAULT_CPU_MEMORY_MB


def call_bytes_per_pixel(engine: str, precision: str, features: int) -> float:
    """Peak working memory of one call of `engine` per input pixel."""
    return BYTES_PER_FEATURE_PIXEL.get((engine, precision), DEFAULT_BYTES_PER_FEATURE_PIXEL) * features


def pixels_for_budget(memory_mb: int, engine: str, precision: str, features: int) -> int:
    """Pixels (batch x height x width) one call of `engine` may take within `memory_mb` MiB."""
    if memory_mb < 1:
        raise ValueError(f"the memory budget must be at least 1 MiB, got {memory_mb}")
    return max(1, int(memory_mb * 2**20 / call_bytes_per_pixel(engine, precision, features)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TilingConfig:
    tile: int = 0  # core tile side in pixels; 0: whole frames unless over max_pixels
    margin: int = DEFAULT_MARGIN  # context kept around each core; raised to the model's radius
    # batch x height x width per inner call; 0: by device (8 Mpx CPU, 32 Mpx GPU)
    max_pixels: int = 0
    # core side used when a frame alone is over max_pixels (without a memory budget;
    # under one the tiles are planned, see plan_spans)
    auto_tile: int = DEFAULT_AUTO_TILE

    def __post_init__(self) -> None:
        for name in ("tile", "margin", "max_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.auto_tile < 1:
            raise ValueError(f"auto_tile must be >= 1, got {self.auto_tile}")


@dataclass(frozen=True, slots=True)
class Span:
    """One window along one axis: [start, stop) is fed to the model, and the output's
    [core_start, core_stop) (in frame coordinates) is kept."""

    start: int
    stop: int
    core_start: int
    core_stop: int


def receptive_radius(model: nn.Module) -> int:
    """Pixels of context each output pixel needs on every side.

    CAR-DRN's convolutions all run one after the other (the skips only add), so
    the radius is the sum of each layer's dilated half-kernel: 4 + 1 + 3 x 2 + 3 x 1
    = 14 for the shipped models.
    """
    radius = 0
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            radius += max(d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation))
    return radius


def tile_spans(length: int, tile: int, margin: int) -> list[Span]:
    """Cut an axis of `length` pixels into cores of `tile` pixels, each inside a
    window of `tile + 2 * margin` pixels (or the whole axis when shorter).

    All windows have the same size, so every window of a frame can go to the engine
    in one batch: windows near the end are shifted back inside the frame instead of
    being cut short.
    """
    window = min(tile + 2 * margin, length)
    spans = []
    for core_start in range(0, length, tile):
        core_stop = min(core_start + tile, length)
        start = max(0, min(core_start - margin, length - window))
        spans.append(Span(start, start + window, core_start, core_stop))
    return spans


def _window(length: int, count: int, margin: int) -> int:
    """Side of each of `count` equal windows that cover `length` with cores `margin`
    inside them: count x window = length + 2 x margin x (count - 1) at the least."""
    return min(length, -(-(length + 2 * margin * (count - 1)) // count))


def even_spans(length: int, count: int, margin: int) -> list[Span]:
    """`count` equal windows spread evenly over an axis; neighbours overlap by at least
    2 x margin and the core boundary lies in the middle of each overlap. Unlike
    `tile_spans`, the windows at the frame's edges need no margin outside it, so the
    same window size covers more."""
    window = _window(length, count, margin)
    if count == 1 or window == length:
        return [Span(0, length, 0, length)]
    starts = [round(i * (length - window) / (count - 1)) for i in range(count)]
    spans, core_start = [], 0
    for i, start in enumerate(starts):
        core_stop = length if i == count - 1 else (starts[i + 1] + start + window) // 2
        spans.append(Span(start, start + window, core_start, core_stop))
        core_start = core_stop
    return spans


def plan_spans(height: int, width: int, margin: int, max_pixels: int) -> tuple[list[Span], list[Span]]:
    """Row and column windows for a height x width frame with at most `max_pixels` per
    window, computing the fewest pixels in all (then: the fewest windows). Cores are
    at least MIN_TILE pixels (or the whole axis): below that a budget only costs calls,
    so a tiny budget runs in the smallest such windows, (MIN_TILE + 2 x margin) pixels
    a side or a little more."""
    best: tuple[tuple[int, int], int, int] | None = None
    for rows in range(1, _finest(height, margin) + 1):
        win_h = _window(height, rows, margin)
        widest = max_pixels // win_h
        if widest >= width:
            cols = 1
        elif widest - 2 * margin >= MIN_TILE:
            cols = -(-(width - 2 * margin) // (widest - 2 * margin))
        else:
            continue
        cost = (rows * win_h * cols * _window(width, cols, margin), rows * cols)
        if best is None or cost < best[0]:
            best = (cost, rows, cols)
    rows, cols = (best[1], best[2]) if best else (_finest(height, margin), _finest(width, margin))
    return even_spans(height, rows, margin), even_spans(width, cols, margin)


def _finest(length: int, margin: int) -> int:
    """The most windows an axis is cut into: more would make cores under MIN_TILE."""
    count = 1
    while _window(length, count + 1, margin) < length and _window(length, count + 1, margin) - 2 * margin >= MIN_TILE:
        count += 1
    return count


class TiledEngine(EngineWrapper):
    """Wraps an engine; large frames go through it in overlapping tiles.

    `tile` > 0 tiles every frame larger than one window; `tile` = 0 tiles only
    frames over `max_pixels`, with `auto_tile`-sized cores, or with `auto_tile` = 0 in
    the windows `plan_spans` finds (a memory budget). Either way batches are split so
    no call to the inner engine gets more than `max_pixels` pixels or `max_batch`
    frames.
    """

    def __init__(self, inner: Engine, tile: int = 0, overlap: int = DEFAULT_MARGIN, *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, auto_tile: int = DEFAULT_AUTO_TILE,
                 max_batch: int = 8) -> None:
        if tile < 0 or overlap < 0 or max_pixels < 1 or auto_tile < 0 or max_batch < 1:
            raise ValueError("tile, overlap and auto_tile must be >= 0; max_pixels and max_batch >= 1")
        super().__init__(inner)
        self.tile = tile
        self.margin = overlap
        self.max_pixels = max_pixels
        self.auto_tile = auto_tile
        self.max_batch = max_batch
        self._layouts: dict[tuple[int, int], tuple[list[Span], list[Span]] | None] = {}

    def layout(self, height: int, width: int) -> tuple[list[Span], list[Span]] | None:
        """Row and column windows for a height x width frame, or None to run it whole."""
        if (height, width) not in self._layouts:
            if self.tile:
                window = self.tile + 2 * self.margin
                core = self.tile if height > window or width > window else 0
            else:
                core = self.auto_tile if height * width > self.max_pixels else 0
            if core:
                layout = tile_spans(height, core, self.margin), tile_spans(width, core, self.margin)
            elif not self.tile and height * width > self.max_pixels:  # auto_tile 0: planned
                layout = plan_spans(height, width, self.margin, self.max_pixels)
            else:
                layout = None
            self._layouts[(height, width)] = layout
        return self._layouts[(height, width)]

    def _per_call(self, pixels: int) -> int:
        return max(1, min(self.max_batch, self.max_pixels // pixels))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n, _, height, width = batch.shape
        layout = self.layout(height, width) if n else None
        if layout is None:
            step = self._per_call(height * width)
            if step >= n:
                return self.inner.infer(batch)
            return np.concatenate([self.inner.infer(batch[i : i + step]) for i in range(0, n, step)])
        return self._infer_tiled(batch, *layout)

    def _infer_tiled(self, batch: np.ndarray, rows: list[Span], cols: list[Span]) -> np.ndarray:
        n, _, height, width = batch.shape
        jobs = [(i, r, c) for i in range(n) for r in rows for c in cols]
        window_pixels = (rows[0].stop - rows[0].start) * (cols[0].stop - cols[0].start)
        step = self._per_call(window_pixels)
        out: np.ndarray | None = None
        for chunk in _chunks(jobs, step):
            crops = np.stack([batch[i, :, r.start : r.stop, c.start : c.stop] for i, r, c in chunk])
            results = self.inner.infer(crops)
            if out is None:
                out = np.empty((n, results.shape[1], height, width), dtype=results.dtype)
            for (i, r, c), result in zip(chunk, results):
                out[i, :, r.core_start : r.core_stop, c.core_start : c.core_stop] = result[
                    :, r.core_start - r.start : r.core_stop - r.start, c.core_start - c.start : c.core_stop - c.start
                ]
        assert out is not None  # jobs is never empty: n >= 1 and both axes >= 1 px here
        return out


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
