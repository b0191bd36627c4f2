"""The built-in calibration set: real degraded model inputs, and the pristine crops.

The file (streamfix/weights/calibration-set.npz, made by
`python -m streamfix.train.calibration_set`) holds 128 x 128 crops of training
pictures after x264 (with the decoder's QP map) and after JPEG. Two uses:

- int8 quantization reads activation ranges from the `calibrate` split;
- `--engine auto --precision auto` keeps a candidate only if its restoration gain on
  the `check` split (pictures the models never trained on) stays within a bound of
  the float32 gain.

The inputs are made here from uint8 planes and strengths the way
restore/conditioning.py makes them at run time (plane / 255, QP / 51, quality / 100).
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamfix.core.weights import JPEG_QUALITY_SCALE, QP_SCALE, WEIGHTS_DIR, ModelInfo

PATH = WEIGHTS_DIR / "calibration-set.npz"


class CalibrationUnavailable(ValueError):
    """The model takes inputs the built-in set cannot make."""


@dataclass(frozen=True, slots=True)
class CalibrationSet:
    calibrate: np.ndarray  # N x (1 + cond) x H x W float32: inputs for activation ranges
    check: np.ndarray  # M x (1 + cond) x H x W float32: inputs for the gain check
    check_clean: np.ndarray  # M x H x W uint8: the pristine crops behind `check`
    sha256: str  # of the file: part of every cache key built on this set

    def gain_db(self, restored: np.ndarray) -> float:
        """Restoration gain on the check split: PSNR(restored, source) - PSNR(degraded,
        source) in dB, pooled over all crops. `restored` is the model's M x 1 x H x W
        output; it is rounded to 8 bits first, as the pipeline writes it."""
        clean = self.check_clean.astype(np.float64)
        out = np.rint(np.clip(restored[:, 0].astype(np.float64), 0.0, 1.0) * 255.0)
        degraded = np.rint(self.check[:, 0].astype(np.float64) * 255.0)
        before, after = np.mean((degraded - clean) ** 2), np.mean((out - clean) ** 2)
        return math.inf if after == 0 else 10.0 * math.log10(before / after)


@functools.lru_cache(maxsize=4)
def _arrays(path: Path) -> tuple[dict[str, np.ndarray], str]:
    data = path.read_bytes()
    with np.load(path) as z:
        return {k: z[k] for k in z.files}, hashlib.sha256(data).hexdigest()


def _inputs(arrays: dict[str, np.ndarray], kind: str, split: str, cond_channels: int) -> np.ndarray:
    source = "qp" if kind == "qp" else "jpeg_quality"  # blind models get the JPEG crops
    luma = arrays[f"{source}/{split}/degraded"].astype(np.float32) / 255.0
    planes = [luma]
    if cond_channels:
        if kind == "qp":
            planes.append(arrays[f"qp/{split}/qp"].astype(np.float32) / QP_SCALE)
        else:
            quality = arrays[f"jpeg_quality/{split}/quality"].astype(np.float32) / JPEG_QUALITY_SCALE
            planes.append(np.broadcast_to(quality[:, None, None], luma.shape))
    return np.ascontiguousarray(np.stack(planes, axis=1), dtype=np.float32)


def calibration_set(info: ModelInfo, path: Path = PATH) -> CalibrationSet:
    """The set for `info`'s kind of input (its conditioning decides which crops)."""
    args = info.model_args
    if args.channels != 1 or args.cond_channels > 1 or info.conditioning not in ("qp", "jpeg_quality", "none"):
        raise CalibrationUnavailable(
            f"the built-in calibration set holds luma crops with a QP or JPEG-quality plane; model {info.name} "
            f"takes {args.channels} image and {args.cond_channels} conditioning planes ({info.conditioning})")
    if not path.is_file():
        raise CalibrationUnavailable(f"{path} is missing; reinstall streamfix or run "
                                     "`python -m streamfix.train.calibration_set --data FOLDER`")
    arrays, sha = _arrays(path)
    kind = info.conditioning
    source = "qp" if kind == "qp" else "jpeg_quality"
    return CalibrationSet(_inputs(arrays, kind, "calibrate", args.cond_channels),
                          _inputs(arrays, kind, "check", args.cond_channels),
                          arrays[f"{source}/check/clean"], sha)
