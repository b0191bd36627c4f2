"""YUV planes of PyAV frames <-> numpy arrays, for 8-bit and 10/12/16-bit formats.

Decoders pad each row to `line_size` bytes; these helpers cut the padding off when
reading and respect it when writing.
"""

from __future__ import annotations

import av
import numpy as np

# FFmpeg 8.1's multi-threaded swscale is not deterministic for some layouts: yuv422p ->
# yuyv422 at widths whose chroma width is odd (66, 70, 98 px) changed 1-15% of
# conversions of the same frame (a race; measured here, 200 tries each); with one
# thread it is exact every time. So every conversion and scale goes through
# `reformat` below. The pipeline runs its stages in parallel threads anyway.
SWSCALE_THREADS = 1


def reformat(frame: av.VideoFrame, **options: object) -> av.VideoFrame:
    """`frame.reformat(**options)` on one swscale thread (see SWSCALE_THREADS)."""
    return frame.reformat(threads=SWSCALE_THREADS, **options)


def bit_depth(frame_or_format: av.VideoFrame | av.VideoFormat) -> int:
    """Bits per sample of a frame's (or a pixel format's) deepest component: 8, 10, 16."""
    fmt = frame_or_format.format if isinstance(frame_or_format, av.VideoFrame) else frame_or_format
    return max(c.bits for c in fmt.components)


def plane_dtype(frame: av.VideoFrame) -> np.dtype:
    """uint8 for 8-bit formats, little-endian uint16 for deeper ones."""
    return np.dtype(np.uint8) if bit_depth(frame) <= 8 else np.dtype("<u2")


def plane_to_array(frame: av.VideoFrame, index: int) -> np.ndarray:
    """Plane `index` of `frame` as a (height, width) array, padding removed."""
    plane = frame.planes[index]
    dtype = plane_dtype(frame)
    row = plane.line_size // dtype.itemsize
    data = np.frombuffer(plane, dtype=dtype)
    return data.reshape(-1, row)[: plane.height, : plane.width].copy()


def array_to_plane(frame: av.VideoFrame, index: int, values: np.ndarray) -> None:
    """Write a (height, width) array into plane `index` of `frame` in place."""
    plane = frame.planes[index]
    dtype = plane_dtype(frame)
    if values.shape != (plane.height, plane.width):
        raise ValueError(f"plane {index}: expected {(plane.height, plane.width)}, got {values.shape}")
    row = plane.line_size // dtype.itemsize
    view = np.frombuffer(plane, dtype=dtype).reshape(-1, row)
    view[: plane.height, : plane.width] = values.astype(dtype, copy=False)
