"""From a decoded plane (+ what the bitstream says about its quality) to the model's
input, and from the model's output back to a plane.

This is the one place that knows how each kind of model wants its input, so the
pipeline, the evaluation and the Python API all feed models the same way:

- "none": the plane alone, scaled to [0, 1].
- "jpeg_quality": the plane + a constant plane of quality / 100 (quality from the
  JPEG's quantization tables).
- "qp": the plane + the decoder's per-macroblock QP / 51, upsampled to pixels
  (H.264 exports it). For decoders that export no QP (HEVC, ...) the caller may pass
  an estimated frame QP; without one the frame is not restored (see `needs_restoring`).

High bit depths are mapped to the same [0, 1] range (value / (2^bits - 1)); the
models are trained on 8-bit data, and the artifacts scale with the range.
"""

from __future__ import annotations

import numpy as np

from streamfix.media.qp import qp_map_to_pixels
from streamfix.core.weights import JPEG_QUALITY_SCALE, QP_SCALE, ModelInfo

# Below this mean QP a frame passes through untouched (which also saves the compute).
# Measured for the shipped video-x264-qp (27,500 steps and two 4,000-step fine-tuning
# stages) on clips made from held-out validation pictures at CRF 14-34, `python -m
# streamfix.train.calibrate_gate RUN_DIR --codecs libx264 libx264-hw`: mean gain per
# frame by mean QP, x264: 16-17: -0.22 dB, 18-19: -0.15, 20-21: -0.03, 22-23: +0.04
# (39% of the frames lose), 24-25: +0.07, 26-27: +0.21, 30-31: +0.31, 40-41: +0.40;
# hardware-like x264 (constant QP): 20-21: -0.20, 22-23: +0.02, 24-25: +0.12. Near-lossless
# frames can only lose, so the model starts where its gain turns reliably positive
# for both. Each earlier model crossed at the same place (benchmarks/encoders.md).
CLEAN_QP = 24.0


class MissingStrength(ValueError):
    """A conditioned model was asked to run without its conditioning value."""


def plane_to_unit(plane: np.ndarray, bits: int = 8) -> np.ndarray:
    return plane.astype(np.float32) / float((1 << bits) - 1)


def unit_to_plane(values: np.ndarray, bits: int = 8) -> np.ndarray:
    peak = (1 << bits) - 1
    out = np.rint(np.clip(values, 0.0, 1.0) * peak)
    return out.astype(np.uint8 if bits <= 8 else np.uint16)


def condition_plane(info: ModelInfo, height: int, width: int, *, qp_map: np.ndarray | None = None,
                    frame_qp: float | None = None, jpeg_quality: int | None = None) -> np.ndarray | None:
    """The extra input plane for `info`'s conditioning (None for blind models)."""
    kind = info.conditioning
    if kind == "none":
        return None
    if kind == "jpeg_quality":
        if jpeg_quality is None:
            raise MissingStrength(f"model {info.name} needs the JPEG quality of its input")
        return jpeg_quality_plane(jpeg_quality, height, width)
    if kind == "qp":
        if qp_map is not None:
            return qp_plane(qp_map_to_pixels(qp_map, height, width))
        if frame_qp is not None:
            return qp_plane(np.full((height, width), frame_qp, np.float32))
        raise MissingStrength(f"model {info.name} needs a QP map (H.264) or an estimated QP")
    raise ValueError(f"unknown conditioning {kind!r}")


def jpeg_quality_plane(quality: float, height: int, width: int) -> np.ndarray:
    """The conditioning plane of a JPEG-quality model: quality / 100 everywhere."""
    return np.full((height, width), quality / JPEG_QUALITY_SCALE, np.float32)


def qp_plane(qp_pixels: np.ndarray) -> np.ndarray:
    """The conditioning plane of a QP model from a per-pixel QP: QP / 51."""
    return (np.asarray(qp_pixels, np.float32) / QP_SCALE).astype(np.float32)


def stack_input(unit_plane: np.ndarray, cond: np.ndarray | None) -> np.ndarray:
    """(1 + cond) x H x W float32: the image plane in [0, 1], then the condition."""
    planes = [np.asarray(unit_plane, np.float32)]
    if cond is not None:
        planes.append(np.asarray(cond, np.float32))
    return np.stack(planes)


def model_input(info: ModelInfo, plane: np.ndarray, bits: int = 8, **strength) -> np.ndarray:
    """(1 + cond) x H x W float32 input for one plane (training builds its inputs
    with the same three functions above, so both feed the model alike)."""
    return stack_input(plane_to_unit(plane, bits), condition_plane(info, *plane.shape, **strength))


def needs_restoring(info: ModelInfo, *, qp_map: np.ndarray | None = None, frame_qp: float | None = None,
                    clean_qp: float | None = CLEAN_QP, reference_qp: float | None = None,
                    gate_margin: float = 0.0) -> bool:
    """False for frames a QP-conditioned model should leave alone: near-lossless ones
    (mean QP under `clean_qp`; None: no such gate, the user's `--gate off`), and ones
    whose strength is unknown (restoring blind could destroy clean video). A B-frame's
    `reference_qp` (restore/strength.py) counts as its level when it is higher; the
    level must clear the gate by `gate_margin` (codecs whose QP is a fit)."""
    if info.conditioning != "qp":
        return True
    if qp_map is not None:
        level = float(np.mean(qp_map))
    elif frame_qp is not None:
        level = frame_qp
    else:
        return False
    if reference_qp is not None:
        level = max(level, reference_qp)
    return clean_qp is None or level >= clean_qp + gate_margin
