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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from torch import nn

from streamfix.engines.base import Engine
from streamfix.engines.wrapper import EngineWrapper

DEFAULT_MARGIN = 16
# 8 Mpx is four 1080p frames: about 2 GB per 64-channel float32 feature map, which
# a desktop's RAM holds a few of. GPU engines run FP16 (half the bytes) on batches
# of up to 16 1080p frames (33 Mpx), which is what keeps a large GPU busy.
DEFAULT_MAX_PIXELS = 8_388_608
GPU_MAX_PIXELS = 33_554_432
DEFAULT_AUTO_TILE = 512


def max_pixels_for(device: str) -> int:
    return GPU_MAX_PIXELS if device.startswith("cuda") else DEFAULT_MAX_PIXELS


@dataclass(frozen=True, slots=True, kw_only=True)
class TilingConfig:
    tile: int = 0  # core tile side in pixels; 0: whole frames unless over max_pixels
    margin: int = DEFAULT_MARGIN  # context kept around each core; raised to the model's radius
    # batch x height x width per inner call; 0: by device (8 Mpx CPU, 32 Mpx GPU)
    max_pixels: int = 0
    auto_tile: int = DEFAULT_AUTO_TILE  # core side used when a frame alone is over max_pixels

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


class TiledEngine(EngineWrapper):
    """Wraps an engine; large frames go through it in overlapping tiles.

    `tile` > 0 tiles every frame larger than one window; `tile` = 0 tiles only
    frames over `max_pixels` (with `auto_tile`-sized cores). Either way batches are
    split so no call to the inner engine gets more than `max_pixels` pixels or
    `max_batch` frames.
    """

    def __init__(self, inner: Engine, tile: int = 0, overlap: int = DEFAULT_MARGIN, *,
                 max_pixels: int = DEFAULT_MAX_PIXELS, auto_tile: int = DEFAULT_AUTO_TILE,
                 max_batch: int = 8) -> None:
        if tile < 0 or overlap < 0 or max_pixels < 1 or auto_tile < 1 or max_batch < 1:
            raise ValueError("tile and overlap must be >= 0; max_pixels, auto_tile and max_batch >= 1")
        super().__init__(inner)
        self.tile = tile
        self.margin = overlap
        self.max_pixels = max_pixels
        self.auto_tile = auto_tile
        self.max_batch = max_batch

    def _core_side(self, height: int, width: int) -> int:
        """Core side to tile a height x width frame with, or 0 to run it whole."""
        if self.tile:
            window = self.tile + 2 * self.margin
            return self.tile if height > window or width > window else 0
        return self.auto_tile if height * width > self.max_pixels else 0

    def _per_call(self, pixels: int) -> int:
        return max(1, min(self.max_batch, self.max_pixels // pixels))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        n, _, height, width = batch.shape
        core = self._core_side(height, width)
        if not core or n == 0:
            step = self._per_call(height * width)
            if step >= n:
                return self.inner.infer(batch)
            return np.concatenate([self.inner.infer(batch[i : i + step]) for i in range(0, n, step)])
        return self._infer_tiled(batch, core)

    def _infer_tiled(self, batch: np.ndarray, core: int) -> np.ndarray:
        n, _, height, width = batch.shape
        rows = tile_spans(height, core, self.margin)
        cols = tile_spans(width, core, self.margin)
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
