"""A decoded frame as integer planes the model can read, and back.

YUV-native: planar formats are used as they are; packed YUV (yuyv422, ...) and
nv12/p010 with chroma to restore are converted to the planar format with the same
subsampling and back, which is lossless; RGB (PNG stills) is taken apart into
full-range BT.601 YCbCr (the YCbCr of JPEG files) and the model's change to each
plane is put back into R, G and B, so untouched chroma is not rounded twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from streamfix.media.planes import array_to_plane, bit_depth, plane_to_array, reformat


@dataclass(slots=True)
class SplitFrame:
    """A frame taken apart into integer planes the model can read."""

    planes: list[np.ndarray]  # [luma, chroma...]
    bits: int
    chroma: bool  # whether planes[1:] are single chroma components (restorable)
    join: Callable[[list[np.ndarray]], av.VideoFrame]  # planes -> frame in the source format


def _planar_name(fmt: av.VideoFormat, bits: int) -> str:
    """The planar YUV format with the same chroma subsampling and depth as `fmt`."""
    sx = 16 // max(fmt.chroma_width(16), 1)
    sy = 16 // max(fmt.chroma_height(16), 1)
    layout = {(1, 1): "444", (2, 1): "422", (2, 2): "420", (4, 1): "411", (1, 2): "440", (4, 4): "410"}
    name = f"yuv{layout.get((sx, sy), '444')}p"
    return name if bits <= 8 else f"{name}{bits}le"


def _split_planar(frame: av.VideoFrame) -> SplitFrame:
    fmt = frame.format
    planes = [plane_to_array(frame, i) for i in range(len(frame.planes))]
    per_plane = [sum(1 for c in fmt.components if c.plane == i) for i in range(len(frame.planes))]

    def join(values: list[np.ndarray]) -> av.VideoFrame:
        out = av.VideoFrame(frame.width, frame.height, fmt.name)
        for i, plane in enumerate(values):
            array_to_plane(out, i, plane)
        return out

    return SplitFrame(planes, bit_depth(frame), all(n == 1 for n in per_plane[1:]), join)


def _split_rgb(frame: av.VideoFrame) -> SplitFrame:
    bits = 8 if bit_depth(frame) <= 8 else 16
    alpha = any(c.is_alpha for c in frame.format.components)
    work = {(8, False): "rgb24", (8, True): "rgba", (16, False): "rgb48le", (16, True): "rgba64le"}[bits, alpha]
    rgb = frame.to_ndarray(format=work).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    peak, mid = (1 << bits) - 1, float(1 << (bits - 1))
    # Full-range BT.601 (JFIF), the YCbCr of JPEG files.
    ycc = [0.299 * r + 0.587 * g + 0.114 * b,
           mid - 0.168736 * r - 0.331264 * g + 0.5 * b,
           mid + 0.5 * r - 0.418688 * g - 0.081312 * b]
    dtype = np.uint8 if bits == 8 else np.uint16
    planes = [np.clip(np.rint(p), 0, peak).astype(dtype) for p in ycc]
    before = list(planes)  # the restorer replaces entries of `planes`; keep the originals

    def join(values: list[np.ndarray]) -> av.VideoFrame:
        dy, dcb, dcr = (v.astype(np.float64) - p.astype(np.float64) for v, p in zip(values, before))
        out = rgb.copy()
        out[..., 0] += dy + 1.402 * dcr
        out[..., 1] += dy - 0.344136 * dcb - 0.714136 * dcr
        out[..., 2] += dy + 1.772 * dcb
        image = np.clip(np.rint(out), 0, peak).astype(dtype)
        result = av.VideoFrame.from_ndarray(image, format=work)
        return result if work == frame.format.name else reformat(result, format=frame.format.name)

    return SplitFrame(planes, bits, True, join)


def split_frame(frame: av.VideoFrame, *, chroma: bool) -> SplitFrame:
    """`frame` as integer planes; converted to a planar layout only when needed."""
    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette:
        return _split_rgb(frame)
    luma_alone = all(c.is_luma for c in fmt.components if c.plane == 0)
    split = _split_planar(frame) if luma_alone else None
    if split is not None and (split.chroma or not chroma):
        return split
    planar = _split_planar(reformat(frame, format=_planar_name(fmt, bit_depth(frame))))
    planar.join = lambda values, join=planar.join: reformat(join(values), format=fmt.name)
    return planar


def condition_for_plane(plane: np.ndarray, luma_cond: np.ndarray | None) -> np.ndarray | None:
    """The luma-sized conditioning plane resampled to a (subsampled) chroma plane."""
    if luma_cond is None or luma_cond.shape == plane.shape:
        return luma_cond
    h, w = plane.shape
    sy = -(-luma_cond.shape[0] // h)
    sx = -(-luma_cond.shape[1] // w)
    small = luma_cond[::sy, ::sx][:h, :w]
    return np.pad(small, ((0, h - small.shape[0]), (0, w - small.shape[1])), mode="edge")
