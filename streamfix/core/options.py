"""The names a user may give for each choice, in one place.

The run config (Literal types, checked when YAML is loaded), the command line
(`choices=`), the Restorer and the engine selection all read them from here, so a
new engine or mode is added once. Kept free of heavy imports: the CLI reads these
before anything else is loaded.
"""

from __future__ import annotations

from typing import Literal, get_args

# `auto` tries the backends in this order and takes the first that works here.
EngineName = Literal["auto", "tensorrt", "onnxruntime", "openvino", "torch"]
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)
BACKEND_NAMES: tuple[str, ...] = ENGINE_NAMES[1:]

# What the CPU engines compute in (engines/precision.py). auto: on a CPU with
# --engine auto, the fastest that keeps the restoration gain, measured once per
# machine; with a named engine, that engine's exact default (fp32 on the CPU); on a
# GPU, FP16 where its accuracy gate allows.
PrecisionName = Literal["auto", "fp32", "bf16", "int8"]
PRECISION_NAMES: tuple[str, ...] = get_args(PrecisionName)

# passthrough: chroma copied unchanged; luma_model: chroma planes restored by the
# luma model too; stills: luma_model for still pictures, passthrough for video.
ChromaMode = Literal["passthrough", "luma_model", "stills"]
CHROMA_MODES: tuple[str, ...] = get_args(ChromaMode)

# Self-ensemble (8 flips/rotations averaged): stills only, always, or never.
EnsembleMode = Literal["stills", "always", "never"]
ENSEMBLE_MODES: tuple[str, ...] = get_args(EnsembleMode)

# Model tiers: full (the paper's widths), light (the same topology, narrower: about
# 9x less compute, bundled as NAME-lite), auto (live mode restores with the full model
# where it makes the deadline and with the light one where only that does).
TierName = Literal["auto", "full", "light"]
TIERS: tuple[str, ...] = get_args(TierName)
LIGHT_SUFFIX = "-lite"

# Past these, a value only costs: batches over 64 frames just hold more frames in
# memory (a CPU gains nothing past 4 per call, a GPU little past ~16 at 1080p), and a
# tile much smaller than the network's receptive field (29 px, plus a 15 px margin on
# every side) spends most of each call on the overlap: a 1-px tile means ~1,000 engine
# calls per 32x32 pixels.
MAX_BATCH = 64
MIN_TILE, MAX_TILE = 32, 16384

# The clean-frame gate of QP-conditioned models: frames whose mean QP is under the
# gate pass through unrestored. auto: the calibrated CLEAN_QP (restore/conditioning.py);
# off: every frame whose quantizer is known is restored; a number: that mean QP.
GateName = Literal["auto", "off"]
GATE_NAMES: tuple[str, ...] = get_args(GateName)
MAX_QP = 63  # H.264/HEVC 8-bit QPs end at 51, 10-bit at 63


def gate_qp(gate: str | float, calibrated: float) -> float | None:
    """The mean QP under which frames pass through (None: no gate) for a `gate`
    setting; `calibrated` is what "auto" means."""
    if gate == "auto":
        return calibrated
    if gate == "off":
        return None
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0 <= gate <= MAX_QP:
        raise ValueError(f"gate must be auto, off or a mean QP from 0 to {MAX_QP}, got {gate!r}")
    return float(gate)
