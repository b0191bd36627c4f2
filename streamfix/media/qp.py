"""The H.264 decoder's per-macroblock quantizer, exported as frame side data.

Set `stream.codec_context.options = {"export_side_data": "venc_params"}` before the
first decode; then every H.264 frame carries VIDEO_ENC_PARAMS side data whose
`qp_map()` is the QP of each 16x16 macroblock. Other decoders (HEVC, VP9, MPEG-2,
MJPEG, ...) export nothing in the FFmpeg that PyAV bundles: callers get None.
"""

from __future__ import annotations

import av
import numpy as np

EXPORT_QP_OPTIONS = {"export_side_data": "venc_params"}
MACROBLOCK = 16

try:
    _ENC_PARAMS = av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS
except AttributeError:  # a PyAV without the wrapper: no QP maps
    _ENC_PARAMS = None


def frame_qp_map(frame: av.VideoFrame) -> np.ndarray | None:
    """rows x cols QP of the frame's macroblocks, or None if the decoder gave none."""
    if _ENC_PARAMS is None:
        return None
    params = frame.side_data.get(_ENC_PARAMS)
    if params is None:
        return None
    try:
        qp = np.asarray(params.qp_map(), dtype=np.float32)
    except (RuntimeError, ValueError):
        # VP9's decoder exports encoding parameters per block of its own size, which
        # PyAV's macroblock map cannot read: no usable QP map.
        return None
    return qp if qp.size else None


def qp_map_to_pixels(qp: np.ndarray, height: int, width: int, block: int = MACROBLOCK) -> np.ndarray:
    """Nearest-neighbour upsampling of a block QP map to height x width pixels
    (each block covers `block` pixels; a partial last block row/column is cut)."""
    rows = -(-height // block)
    cols = -(-width // block)
    qp = np.asarray(qp, dtype=np.float32)
    if qp.shape[0] < rows or qp.shape[1] < cols:  # pad by repeating the last block
        qp = np.pad(qp, ((0, max(0, rows - qp.shape[0])), (0, max(0, cols - qp.shape[1]))), mode="edge")
    full = np.repeat(np.repeat(qp[:rows, :cols], block, axis=0), block, axis=1)
    return np.ascontiguousarray(full[:height, :width])
