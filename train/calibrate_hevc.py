"""Fit how HEVC frame size maps to frame QP, for decoders that export no QP map.

FFmpeg's HEVC decoder exports no per-block quantizer, so the QP-conditioned video
model gets an estimate instead: QP ~ a[type] + b[type] * log2(bits per pixel), one
line per frame type (I/P/B), fitted here on x265 encodes of the *training* images
(pans and zooms as in training, CRF 15-48, three presets), with x265's own per-frame
QP (its CSV log) as the truth. HEVC and H.264 share the QP scale (the quantizer step
doubles every 6), so the estimate feeds the same conditioning plane.

    python -m streamfix.train.calibrate_hevc ../shared/data/train [--clips 150]

prints the coefficients and the estimate's error; they are copied into
streamfix/restore/strength.py (HEVC_I_FIT).
"""

from __future__ import annotations

import argparse
import csv
import gc
import tempfile
from pathlib import Path

import av
import numpy as np

from streamfix.media.crf_encode import encode_at_crf

from streamfix.train.data import find_images
from streamfix.train.degrade import camera_clip

WIDTH = HEIGHT = 160  # square windows that fit the 481x321 BSDS pictures with room to move
FRAMES = 8


def _encode(frames: list[av.VideoFrame], crf: int, preset: str, out_path: Path, csv_path: Path) -> None:
    encode_at_crf(frames, out_path, codec="libx265", crf=crf, preset=preset, threads=1,
                  x265_params=f"csv={csv_path}:csv-log-level=1")
    gc.collect()  # x265 writes its CSV when the encoder is freed


def collect(images: list[Path], clips: int, seed: int = 0) -> list[tuple[str, float, float, int]]:
    """(frame type, bits per pixel, x265 frame QP, clip) for every frame of `clips` clips."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(clips):
            rng = np.random.default_rng([seed, i])
            frames = camera_clip(rng, images, WIDTH, FRAMES)
            if frames is None:
                continue
            crf = int(rng.integers(15, 49))
            preset = str(rng.choice(["medium", "fast", "slow"]))
            csv_path = Path(tmp) / f"{i}.csv"
            _encode(frames, crf, preset, Path(tmp) / f"{i}.mp4", csv_path)
            with csv_path.open() as f:
                for row in csv.DictReader(f, skipinitialspace=True):
                    kind = row["Type"].strip()[0]  # I-SLICE / P-SLICE / B-SLICE (b-SLICE too)
                    bits = float(row["Bits"])
                    rows.append((kind.upper(), max(bits, 1.0) / (WIDTH * HEIGHT), float(row["QP"]), i))
    return rows


def fit(rows: list[tuple[str, float, float, int]]) -> dict[str, tuple[float, float, float]]:
    """type -> (a, b, rms error) of QP = a + b * log2(bpp)."""
    out = {}
    for kind in "IPB":
        sel = [(np.log2(bpp), qp) for k, bpp, qp, _ in rows if k == kind]
        if len(sel) < 5:
            continue
        x, y = np.array(sel).T
        b, a = np.polyfit(x, y, 1)
        rms = float(np.sqrt(np.mean((a + b * x - y) ** 2)))
        out[kind] = (float(a), float(b), rms)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--clips", type=int, default=150)
    args = parser.parse_args(argv)
    rows = collect(find_images(tuple(args.folders)), args.clips)
    fits = fit(rows)
    for kind, (a, b, rms) in fits.items():
        n = sum(1 for k, *_ in rows if k == kind)
        print(f"{kind}: QP = {a:.2f} + {b:.3f} * log2(bpp)   rms error {rms:.2f} QP over {n} frames")
    # Alternative: P/B frames take the estimate of their clip's I-frame plus a fixed
    # offset per type (x265 keeps P/B QPs at fixed ratios from the I-frame QP in CRF mode).
    a, b, _ = fits["I"]
    i_est = {c: a + b * np.log2(bpp) for k, bpp, _, c in rows if k == "I"}
    for kind in "PB":
        d = np.array([qp - i_est[c] for k, _, qp, c in rows if k == kind and c in i_est])
        print(f"{kind} from the I-frame estimate: offset {d.mean():+.2f}, rms error {d.std():.2f} QP")


if __name__ == "__main__":
    main()
