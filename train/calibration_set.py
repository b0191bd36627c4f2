"""Build the built-in calibration set (streamfix/weights/calibration-set.npz).

    python -m streamfix.train.calibration_set --data ../shared/data/train

The CPU engines need real degraded model inputs twice: int8 quantization reads the
activation ranges they produce (engines/int8_quantize.py), and `--engine auto
--precision auto` checks that a faster candidate keeps the restoration gain against
the pristine source (engines/auto_choice.py). Both run on users' machines, where the
training pictures are not, so a small set is made here once and shipped.

For each conditioning kind the set holds two splits of 128 x 128 uint8 crops, with
their strength (per-pixel QP, or one JPEG quality per crop; engines/calibration_set.py
makes the model inputs from them as restore/conditioning.py does):
- `calibrate`: from training pictures, for activation ranges;
- `check`: from the pictures the training run held out for validation (train/data.py's
  split), with their pristine crops, for the gain check.
"qp" crops are frames of short x264 clips (train/degrade.py: a camera panning over a
picture, I and P/B frames, the decoder's QP map); "jpeg_quality" crops are JPEG
round trips (libjpeg tables). Strengths cover what the models restore: x264 CRF
26-44, JPEG quality 10-50. Everything is seeded: the same encoder builds the same
file, in about a second.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamfix.core.jpeg import jpeg_roundtrip, load_luma
from streamfix.core.weights import WEIGHTS_DIR

from streamfix.train.config import VideoConfig
from streamfix.train.data import aligned_crop_origin, find_images, split
from streamfix.train.degrade import make_clip

OUT = WEIGHTS_DIR / "calibration-set.npz"
CROP = 128
CRFS = (26, 32, 38, 44)
QUALITIES = (10, 15, 20, 30, 40, 50)
CLIPS = 6  # clips per split; FRAMES frames each
FRAMES = 4
PICTURES = 24  # JPEG crops per split
VAL_FRACTION = 0.05  # the training configs' val_fraction: the check split is their held-out set


def _video_split(pictures: list[Path], seed: int) -> dict[str, np.ndarray]:
    config = VideoConfig(clip_size=CROP, clip_frames=FRAMES, presets=("medium",))
    clean, degraded, qp = [], [], []
    for n in range(CLIPS):
        rng = np.random.default_rng([seed, n])
        with Image.open(pictures[n * len(pictures) // CLIPS]) as im:
            clip = make_clip(rng, im.convert("RGB"), config, CRFS[n % len(CRFS)])
        clean.append(clip.clean)
        degraded.append(clip.decoded)
        qp.append(np.rint(clip.qp).astype(np.uint8))  # H.264 QPs are whole numbers
    return {"clean": np.concatenate(clean), "degraded": np.concatenate(degraded), "qp": np.concatenate(qp)}


def _jpeg_split(pictures: list[Path], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean, degraded, quality = [], [], []
    for n in range(PICTURES):
        luma = load_luma(pictures[n * len(pictures) // PICTURES])
        y, x = aligned_crop_origin(rng, luma.shape, CROP, 8)
        crop = np.ascontiguousarray(luma[y : y + CROP, x : x + CROP])
        quality.append(QUALITIES[n % len(QUALITIES)])
        clean.append(crop)
        degraded.append(jpeg_roundtrip(crop, quality[-1]))
    return {"clean": np.stack(clean), "degraded": np.stack(degraded), "quality": np.array(quality, np.uint8)}


def build(data: Path, out: Path = OUT) -> Path:
    train, held_out = split(find_images((data,)), VAL_FRACTION)
    arrays: dict[str, np.ndarray] = {}
    for kind, make in (("qp", _video_split), ("jpeg_quality", _jpeg_split)):
        for name, pictures, seed in (("calibrate", train, 1), ("check", held_out, 2)):
            for key, value in make(pictures, seed).items():
                if name == "calibrate" and key == "clean":
                    continue  # activation ranges need no target
                arrays[f"{kind}/{name}/{key}"] = value
    meta = {"crop": CROP, "crfs": CRFS, "qualities": QUALITIES, "x264_preset": "medium",
            "ffmpeg": str(getattr(av, "ffmpeg_version_info", "?")), "pictures": len(train) + len(held_out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=json.dumps(meta), **arrays)
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of training pictures (never test/)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    path = build(args.data, args.out)
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
