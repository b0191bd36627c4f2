"""The FP16 accuracy gate: is an FP16 engine close enough to the FP32 model?

After every build, sample frames go through the new engine and through the FP32
PyTorch model; the worst frame's output PSNR (on the 0-255 scale) must reach
`min_psnr_db` (45 dB by default: an error far below what the eye or the codec
that follows can see; CAR-DRN's own gain over its input is a few dB). When it does
not, the next variant in the ladder is built and checked:

    fp16         every layer in FP16 (fastest)
    fp16-tail1   the reconstruction conv and the global skip in FP32
    fp16-tail3   the last three convs (16-filter layers) and the skip in FP32
    fp32         the whole graph in FP32

A strongly typed network takes its precision from the graph, so a variant is a
different ONNX graph (onnx_mixed_precision.py). If even FP32 misses the bar,
something is wrong with the build, not with precision: the gate fails with a message
saying which engine to use instead. The decision logic below is pure and tested on
given PSNR numbers; building and measuring are passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

import numpy as np
import torch

from streamfix.core.network import CARDRN, fold_batchnorm

MIN_PSNR_DB = 45.0
# variant -> convolutions kept in FP32 (None: build the FP32 graph instead)
VARIANTS: dict[str, int | None] = {"fp16": 0, "fp16-tail1": 1, "fp16-tail3": 3, "fp32": None}

T = TypeVar("T")


class GateFailed(RuntimeError):
    """No variant reached the accuracy bar; the message says what to do."""


@dataclass(frozen=True, slots=True)
class GateStep:
    variant: str
    psnr_db: float
    passed: bool


@dataclass(frozen=True, slots=True)
class GateResult(Generic[T]):
    variant: str
    steps: tuple[GateStep, ...]
    payload: T  # what the winning try produced (the engine)

    def as_dict(self) -> dict:
        return {"variant": self.variant,
                "steps": [{"variant": s.variant, "psnr_db": _json_number(s.psnr_db), "passed": s.passed}
                          for s in self.steps]}


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # JSON has no inf


def ladder(precision: str) -> list[str]:
    """Variants to try, best speed first: FP16 requests walk the whole ladder; an FP32
    request builds FP32 only."""
    if precision == "fp32":
        return ["fp32"]
    if precision == "fp16":
        return list(VARIANTS)
    raise ValueError(f"unknown precision {precision!r}: use fp16 or fp32")


def passes(psnr_db: float, min_db: float = MIN_PSNR_DB) -> bool:
    """NaN (the engine produced NaN/inf somewhere) never passes."""
    return not math.isnan(psnr_db) and psnr_db >= min_db


def run_gate(variants: Sequence[str], try_variant: Callable[[str], tuple[float, T]], *,
             min_db: float = MIN_PSNR_DB, log: Callable[[str], None] = print) -> GateResult[T]:
    """Try `variants` in order until one's PSNR passes; `try_variant` builds one and
    returns (psnr_db, payload)."""
    steps: list[GateStep] = []
    for i, variant in enumerate(variants):
        psnr_db, payload = try_variant(variant)
        ok = passes(psnr_db, min_db)
        steps.append(GateStep(variant, psnr_db, ok))
        if ok:
            log(f"FP16 gate: {variant} engine is {psnr_db:.1f} dB from the FP32 model (>= {min_db:g} dB): accepted")
            return GateResult(variant, tuple(steps), payload)
        following = variants[i + 1] if i + 1 < len(variants) else None
        then = f"rebuilding as {following}" if following else "no variant left"
        log(f"FP16 gate: {variant} engine is only {psnr_db:.1f} dB from the FP32 model "
            f"(< {min_db:g} dB); {then}")
    tried = ", ".join(f"{s.variant} {s.psnr_db:.1f} dB" for s in steps)
    raise GateFailed(f"the TensorRT engine does not match the FP32 model ({tried}; {min_db:g} dB needed); "
                     "run with --engine onnxruntime or --engine torch instead")


def output_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Worst per-frame PSNR (dB, 0-255 scale) of `test` against `reference`, both
    N x C x H x W in [0, 1] (clipped first, as the pipeline clips when writing)."""
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {test.shape}")
    if not np.all(np.isfinite(test)):
        return math.nan
    ref = np.clip(reference.astype(np.float64), 0.0, 1.0) * 255.0
    tst = np.clip(test.astype(np.float64), 0.0, 1.0) * 255.0
    mse = ((ref - tst) ** 2).reshape(len(ref), -1).mean(axis=1)
    worst = float(mse.max())
    return math.inf if worst == 0 else 10.0 * math.log10(255.0**2 / worst)


def sample_frames(planes: int, image_planes: int, height: int, width: int, count: int = 2,
                  seed: int = 0) -> np.ndarray:
    """`count` deterministic test inputs (count x planes x H x W float32 in [0, 1]):
    gradients, edges and texture, flattened to 8x8 block means in places like a
    heavily compressed frame, so the net has real work; conditioning planes are
    constant mid-strength values (QP 31 or quality 40)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((count, planes, height, width), np.float32)
    for n in range(count):
        phase = rng.uniform(0, 2 * np.pi, size=3)
        img = 0.45 + 0.25 * np.sin(xx / (7 + 5 * n) + phase[0]) * np.cos(yy / (11 + 3 * n) + phase[1])
        img += 0.2 * (xx / max(width - 1, 1)) - 0.1
        for _ in range(6):  # hard-edged rectangles
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            img[y0:y0 + rng.integers(4, 40), x0:x0 + rng.integers(4, 40)] += rng.uniform(-0.3, 0.3)
        img += rng.normal(0, 0.02, size=img.shape).astype(np.float32)
        blocky = _block_means(img, 8)
        mask = (xx // 64 + yy // 64) % 2 == 0
        img = np.where(mask, blocky, img)
        for c in range(planes):
            frames[n, c] = np.clip(img, 0, 1) if c < image_planes else 0.6 if c == image_planes else 0.4
    return frames


def _block_means(img: np.ndarray, block: int) -> np.ndarray:
    h, w = img.shape
    ph, pw = -h % block, -w % block
    padded = np.pad(img, ((0, ph), (0, pw)), mode="edge")
    means = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).mean(axis=(1, 3))
    return np.repeat(np.repeat(means, block, 0), block, 1)[:h, :w].astype(np.float32)


def reference_output(model: CARDRN, frames: np.ndarray) -> np.ndarray:
    """The FP32 PyTorch output for `frames`, on the CPU, one frame at a time (bounded
    memory).

    The CPU on purpose: CUDA convolutions may run in TF32 (about FP16's mantissa) and
    the reference must have no such error of its own. Switching TF32 off would mean
    flipping process-wide PyTorch flags, which two builds in two threads (and the
    standby engine serving meanwhile) would race on; the CPU has no TF32 to switch.
    """
    net = fold_batchnorm(model).float().eval().to("cpu")
    outs = []
    with torch.inference_mode():
        for frame in frames:
            outs.append(net(torch.from_numpy(np.ascontiguousarray(frame[None]))).float().numpy())
    return np.concatenate(outs)
