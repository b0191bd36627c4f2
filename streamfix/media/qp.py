"""The H.264 decoder's per-macroblock quantizer, exported as frame side data.

Set `stream.codec_context.options = {"export_side_data": "venc_params"}` before the
first decode; then every H.264 frame carries VIDEO_ENC_PARAMS side data whose
`qp_map()` is the QP of each 16x16 macroblock.

Only H.264's numbers are H.264 QPs, which is what the video model is conditioned
on. Other decoders answer the same request differently: VP9 attaches a frame-level
q index (0-255) and no blocks at all, MPEG-2 and MPEG-4 attach a qscale (1-31) per
macroblock. And PyAV's `qp_map()` raises on anything that is not exactly one record
per 16x16 block of the frame: every VP9 frame, but also interlaced H.264 (MBAFF
codes macroblock pairs, so a 48-line frame reports 4 rows of blocks) and damaged
frames. So the block records are read here directly (the layout MEDIA.md gives),
each 16x16 block placed where its position says, blocks outside the frame left out.
Any codec type but H.264, blocks that do not cover the frame, or any error in
reading them mean "no QP map" (the caller passes the frame through, or estimates,
see restore/strength.py), never a crash.
"""

from __future__ import annotations

import av
import numpy as np

EXPORT_QP_OPTIONS = {"export_side_data": "venc_params"}
MACROBLOCK = 16
# H.264's QP range (8-bit; deeper video extends it downwards, never past 51).
H264_QP_RANGE = (-12.0, 51.0)

# One block's record in the side data: int32 src_x, src_y, w, h, delta_qp.
_RECORD = np.dtype([("x", "<i4"), ("y", "<i4"), ("w", "<i4"), ("h", "<i4"), ("dqp", "<i4")])

try:
    _ENC_PARAMS = av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS
    _H264 = av.sidedata.encparams.VideoEncParamsType.H264
    _VP9 = av.sidedata.encparams.VideoEncParamsType.VP9
    _MPEG2 = av.sidedata.encparams.VideoEncParamsType.MPEG2
except AttributeError:  # a PyAV without the wrapper: no QP maps
    _ENC_PARAMS = _H264 = _VP9 = _MPEG2 = None


def frame_qp_map(frame: av.VideoFrame) -> np.ndarray | None:
    """rows x cols QP of the frame's macroblocks, or None if the decoder gave no
    usable H.264 map (see the module docstring)."""
    if _ENC_PARAMS is None:
        return None
    try:
        params = frame.side_data.get(_ENC_PARAMS)
        if params is None or params.codec_type != _H264 or params.nb_blocks <= 0:
            return None
        blocks = _block_records(params)
        base_qp = params.qp
    except Exception:  # noqa: BLE001 - side data is a hint; a bad one must not stop the run
        return None
    if blocks is None:
        return None
    rows, cols = -(-frame.height // MACROBLOCK), -(-frame.width // MACROBLOCK)
    row, col = blocks["y"] // MACROBLOCK, blocks["x"] // MACROBLOCK
    inside = ((blocks["w"] == MACROBLOCK) & (blocks["h"] == MACROBLOCK) & (row >= 0) & (col >= 0)
              & (row < rows) & (col < cols))
    qp = np.full((rows, cols), np.nan, np.float32)
    qp[row[inside], col[inside]] = base_qp + blocks["dqp"][inside]
    if not np.isfinite(qp).all():  # blocks missing (field pictures, damage): no map
        return None
    return np.clip(qp, *H264_QP_RANGE)


def frame_quantizer(frame: av.VideoFrame) -> tuple[str, float] | None:
    """(codec, the frame's quantizer on that codec's own scale) for codecs that are
    not H.264: ("vp9", base_q_idx 0-255: the frame's parameters, no blocks),
    ("mpeg2video", mean macroblock qscale). None for anything else or on any trouble:
    restore/strength.py turns these into the model's QP by a measured fit."""
    if _ENC_PARAMS is None:
        return None
    try:
        params = frame.side_data.get(_ENC_PARAMS)
        if params is None:
            return None
        if params.codec_type == _VP9:
            return "vp9", float(params.qp)
        if params.codec_type == _MPEG2 and params.nb_blocks > 0:
            blocks = _block_records(params)
            if blocks is None:
                return None
            qscale = params.qp + blocks["dqp"].astype(np.float64)
            return ("mpeg2video", float(np.mean(qscale))) if (qscale > 0).all() else None
    except Exception:  # noqa: BLE001 - side data is a hint; a bad one must not stop the run
        return None
    return None


def _block_records(params: object) -> np.ndarray | None:
    """The side data's per-block records (x, y, w, h, delta QP), or None if the
    buffer is too short for the number of blocks it claims."""
    raw = np.frombuffer(params, dtype=np.uint8)
    count, offset, stride = params.nb_blocks, params.blocks_offset, params.block_size
    if stride < _RECORD.itemsize or offset < 0 or offset + (count - 1) * stride + _RECORD.itemsize > raw.size:
        return None
    return np.ndarray((count,), dtype=_RECORD, buffer=raw, offset=offset, strides=(stride,))


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
