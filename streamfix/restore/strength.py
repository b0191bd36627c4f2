"""How strongly each frame was compressed: the one place that assembles it.

A frame's strength is what the model is conditioned on (restore/conditioning.py):
- H.264: the decoder's per-macroblock QP map, read from the frame's side data
  (media/qp.py; the reader exports it for every frame it decodes);
- HEVC: no QP map in FFmpeg's decoder, so a frame QP is estimated from the coded
  frame size (FrameQpEstimator below, one per stream: it remembers the last I-frame);
- VP9 and AV1: the codec's own frame quantizer (base_q_idx; VP9's decoder exports
  it, AV1's is read from the frame headers, media/av1_quantizer.py), turned into the
  QP under which the model restores best by a measured fit (quantizer_strength below);
- JPEG / MJPEG / stills: the quality read from the file's quantization tables
  (media/ reads it; core/jpeg.py knows the tables);
- anything else: unknown, and a QP-conditioned model leaves such frames alone.

Every way a frame enters (the pipeline's reader, `Restorer.restore`, FrameStream,
the aiortc track) goes through `strength_of_frame` or `StreamStrength.of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamfix.media.qp import frame_qp_map, frame_quantizer


@dataclass(frozen=True, slots=True)
class Strength:
    """What the bitstream says about one frame's compression (any may be unknown)."""

    qp_map: np.ndarray | None = None
    frame_qp: float | None = None
    jpeg_quality: int | None = None
    # B-frames: the mean QP of the reference (I/P) frame shown last before it. The
    # clean-frame gate reads a B-frame as no cleaner than that (see StreamStrength).
    reference_qp: float | None = None
    # How far over the clean-frame gate this frame's level must be: codecs whose QP
    # is a fit rather than a reading may need more (QUANTIZER_FITS below).
    gate_margin: float = 0.0

    @property
    def mean_qp(self) -> float | None:
        """The frame's own mean QP (map or estimate), None when unknown."""
        if self.qp_map is not None:
            return float(np.mean(self.qp_map))
        return self.frame_qp


def strength_of_frame(frame: Any, *, qp_map: np.ndarray | None = None, frame_qp: float | None = None,
                      jpeg_quality: int | None = None, assume_qp: float | None = None) -> Strength:
    """The strength of a bare av.VideoFrame: the given values, else the QP map in its
    side data (decoders opened with media.qp.EXPORT_QP_OPTIONS), else `assume_qp` as
    the frame QP (for sources that export nothing, e.g. WebRTC decoders)."""
    if qp_map is None:
        qp_map = frame_qp_map(frame)
    gate_margin = 0.0
    if qp_map is None and frame_qp is None:
        frame_qp, gate_margin = quantizer_strength(frame) or (None, 0.0)
    if qp_map is None and frame_qp is None:
        frame_qp = assume_qp
    return Strength(qp_map, frame_qp, jpeg_quality, gate_margin=gate_margin)


class StreamStrength:
    """Strengths of one stream's decoded frames (the reader's DecodedFrames, which
    carry the QP map, the coded packet size and the JPEG quality).

    Why B-frames carry `reference_qp`: a B-frame is predicted from its reference
    frames and keeps their artifacts wherever it copies from them, whatever QP its
    own (often mostly skipped) macroblocks report. x264 codes B-frames at a higher
    QP than their references, so for x264 nothing changes; other encoders do not:
    an Intel hardware H.264 stream reported QP 13 in every macroblock of B-frames
    that sat at 32-36 dB between P-frames of QP 30 and more, and the gate passed
    them through. The gate therefore reads a B-frame's level as the larger of its
    own mean QP and that of the reference frame shown last before it."""

    def __init__(self, codec_name: str | None = None) -> None:
        self._estimator = qp_estimator_for(codec_name)
        self._last_reference: float | None = None

    def of(self, decoded: Any) -> Strength:
        frame = decoded.frame
        frame_qp, gate_margin = None, 0.0
        if decoded.qp_map is None and self._estimator is not None:
            frame_qp = self._estimator.estimate(decoded.packet_bytes, frame.width, frame.height, frame.pict_type)
        elif decoded.qp_map is None:
            frame_qp, gate_margin = quantizer_strength(frame, getattr(decoded, "quantizer", None)) or (None, 0.0)
        kind = picture_kind(frame.pict_type)
        reference = self._last_reference if kind == "B" else None
        strength = Strength(decoded.qp_map, frame_qp, decoded.jpeg_quality, reference_qp=reference,
                            gate_margin=gate_margin)
        if kind in ("I", "P") and strength.mean_qp is not None:
            self._last_reference = strength.mean_qp
        return strength


# HEVC: FFmpeg's decoder exports no QP map, so the frame QP is estimated from the
# coded size of the frame. Fitted by `python -m streamfix.train.calibrate_hevc
# ../shared/data/train --clips 160` on x265 encodes of training pictures (CRF 15-48,
# presets medium/fast/slow) against x265's own per-frame QP:
#   I-frames:   QP = 26.64 - 4.650 * log2(bits per pixel)       rms error 4.4 QP
#   P-frames:   I-frame estimate + 3.59                          rms error 4.4 QP
#   B-frames:   I-frame estimate + 7.04                          rms error 4.1 QP
# (P/B frames fitted on their own sizes are much worse, rms 7 QP: their size depends
# on motion more than on the quantizer.) Before the first I-frame of a stream the
# per-type size fits are used: P: 20.90 - 2.893 log2(bpp), B: 14.36 - 3.716 log2(bpp).
HEVC_I_FIT = (26.64, -4.650)
HEVC_OFFSET_FROM_I = {"P": 3.59, "B": 7.04}
HEVC_OWN_FIT = {"P": (20.90, -2.893), "B": (14.36, -3.716)}
ESTIMATED_QP_CODECS = frozenset({"hevc"})


_PICTURE_TYPES = {1: "I", 2: "P", 3: "B", "I": "I", "P": "P", "B": "B"}


def picture_kind(pict_type: object) -> str | None:
    """"I", "P", "B" from FFmpeg's AVPictureType (a number, or PyAV 18's enum), else None."""
    return _PICTURE_TYPES.get(pict_type, _PICTURE_TYPES.get(getattr(pict_type, "name", None)))


class FrameQpEstimator:
    """Estimates the QP of frames whose decoder exports no QP map (HEVC), one stream
    at a time: the estimate of the latest I-frame anchors the P and B frames after it."""

    def __init__(self) -> None:
        self._last_i: float | None = None

    def estimate(self, packet_bytes: int | None, width: int, height: int, pict_type: object) -> float | None:
        """`pict_type`: "I"/"P"/"B" or FFmpeg's AVPictureType number (1/2/3), which
        is what PyAV 18 gives as `frame.pict_type`."""
        if not packet_bytes or width <= 0 or height <= 0:
            return None
        bpp = max(8.0 * packet_bytes, 1.0) / (width * height)
        kind = picture_kind(pict_type) or "P"
        if kind == "I":
            a, b = HEVC_I_FIT
            self._last_i = a + b * float(np.log2(bpp))
            return self._last_i
        if self._last_i is not None:
            return self._last_i + HEVC_OFFSET_FROM_I[kind]
        a, b = HEVC_OWN_FIT[kind]
        return a + b * float(np.log2(bpp))


# VP9 and AV1: the frame's quantizer on the codec's own scale (base_q_idx, 0-255: VP9's
# decoder exports it, media/qp.py frame_quantizer; AV1's is read from the frame
# headers, media/av1_quantizer.py), not an H.264 QP. So the QP given to the model is
# the conditioning that restores best, read off a fit: best QP = a + b * base_q_idx,
# less `margin`. Fitted by `python -m streamfix.train.calibrate_blind_qp
# ../shared/data/train` on clips made from the training pictures and checked on
# held-out clips (benchmarks/blind_qp.md). Too high a QP costs far more than too low
# (VP9 CRF 40 on BasketballPass: +0.15 dB at the best QP, -0.55 dB 12 QP above it).
# - VP9 (24 clips, rms error 2.6 QP): keeps 57-84% of the best fixed QP's gain on the
#   held-out clips and never loses; a 2 QP margin kept less everywhere, so none.
# - AV1 (SVT-AV1, 72 clips, rms error 3.4 QP): the model, trained on x264's artifacts,
#   helps AV1 less and less reliably: the best fixed QP gains +0.085 dB on average and
#   some clips lose at every QP. With the QP 2 under the fit and frames restored only
#   from a fitted QP of 28 (the gate of 24 plus `margin` and `gate_margin`), it keeps
#   +0.037 dB and no clip loses more than 0.01 dB; restoring from 24 would have kept
#   +0.028 with 5 of 72 clips losing up to 1.3 dB (blind_qp.md compares the policies).
# Not here: MPEG-2 (the model's best gain was +0.08 dB and no fit kept any of it): it
# passes through.


@dataclass(frozen=True, slots=True)
class QuantizerFit:
    a: float
    b: float
    margin: float = 0.0       # QP taken off the fit
    gate_margin: float = 0.0  # how far over the clean-frame gate the fitted QP must be

    def qp(self, value: float) -> float:
        return self.a + self.b * value - self.margin


QUANTIZER_FITS: dict[str, QuantizerFit] = {
    "vp9": QuantizerFit(5.95, 0.1325),
    "av1": QuantizerFit(12.21, 0.0873, margin=2.0, gate_margin=2.0),
}


def quantizer_strength(frame: Any, found: tuple[str, float] | None = None) -> tuple[float, float] | None:
    """(the model's QP, the gate margin) for a frame of a codec in QUANTIZER_FITS, else
    None. `found`: the quantizer the reader read from the bitstream (AV1), else the
    frame's side data is asked (VP9)."""
    if found is None:
        found = frame_quantizer(frame)
    if found is None or found[0] not in QUANTIZER_FITS:
        return None
    fit = QUANTIZER_FITS[found[0]]
    return fit.qp(found[1]), fit.gate_margin


def qp_estimator_for(codec_name: str | None) -> FrameQpEstimator | None:
    """A fresh estimator for a codec whose QP is estimated from frame sizes (HEVC),
    else None."""
    return FrameQpEstimator() if codec_name in ESTIMATED_QP_CODECS else None
