"""Fit the model's QP for codecs whose decoders export no H.264 QP map (VP9, and as
measurements: AV1, MPEG-2): the conditioning QP that restores best.

The video model is conditioned on H.264's QP (restore/conditioning.py). VP9 and AV1
quantize on scales of their own, so a QP for them is not a fact to read but a setting
to choose: the one under which the model restores the frame best. Measured on
BasketballPass (VP9 CRF 40/50/60), the gain for conditioning QPs 24..48 rises to
+0.15/+0.25/+0.31 dB and falls fast past its best (-0.5 to -2.7 dB at 8-16 QP too
high).

So, on clips made from the *training* pictures (pans and zooms as in training), for
each codec and a spread of qualities: encode, decode, restore every frame at each QP
of a grid, take the QP of the best mean gain, and fit best QP = a + b * x, where x is
what the stream tells about the quantizer: VP9's base_q_idx of the inter frames
(FFmpeg exports it as the frame's encoding parameters, media/qp.py), AV1's
base_q_idx of the frames coded after the key frame (read from the frame headers,
media/av1_quantizer.py: libdav1d exports nothing), MPEG-2's log2(mean macroblock
qscale).

    python -m streamfix.train.calibrate_blind_qp ../shared/data/train --clips 24

prints each codec's coefficients, the fit's error and the gain the fitted QP keeps
against the best one. Recorded (benchmarks/blind_qp.md): the VP9 and AV1 fits are
copied into streamfix/restore/strength.py (QUANTIZER_FITS); MPEG-2's keeps nothing.
(AV1 was first fitted on log2(bits per pixel) of the inter frames, before its
headers were read: that fit lost 0.03 dB.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np

from streamfix.media.crf_encode import encode_frames
from streamfix.media.planes import plane_to_array
from streamfix.quality.measures import psnr
from streamfix.restore.restorer import Restorer
from streamfix.train.data import find_images
from streamfix.train.degrade import camera_clip

FEATURES = {"vp9": "base_q_idx", "mpeg2video": "log2(qscale)", "av1": "base_q_idx"}
SIZE = 160
FRAMES = 8
QP_GRID = tuple(range(16, 53, 4))
# Encoder, FFmpeg options for one clip at `quality`, and the range of `quality` drawn.
CODECS = {
    "vp9": ("libvpx-vp9", lambda q: {"crf": str(q), "b": "0", "deadline": "good", "cpu-used": "4",
                                     "threads": "1"}, (20, 63)),
    "av1": ("libsvtav1", lambda q: {"crf": str(q), "preset": "10"}, (20, 63)),
    "mpeg2video": ("mpeg2video", lambda q: {"b": str(1_500_000 // q), "g": "12", "bf": "2"}, (2, 31)),
}


def quantizer_feature(codec: str, path: Path) -> float:
    """What the fit reads for `codec`: VP9, the mean base_q_idx of the inter frames
    (FFmpeg's VP9 decoder exports it as the frame's encoding parameters); AV1, the
    mean base_q_idx of the frames coded after the key frame's packet; MPEG-2, log2 of
    the mean macroblock qscale; otherwise log2 of the inter frames' bpp."""
    if codec == "av1":
        values = av1_inter_quantizers(path)
        return float(np.mean(values)) if values else float("nan")
    if codec == "vp9":
        values = [q for kind, q in frame_quantizers(path) if kind != "I"]
        return float(np.mean(values)) if values else float("nan")
    if codec == "mpeg2video":
        values = [q for _, q in frame_quantizers(path)]
        return float(np.log2(np.mean(values))) if values else float("nan")
    return float(np.log2(inter_bpp(path)))


def frame_quantizers(path: Path) -> list[tuple[str, float]]:
    """(frame type, frame quantizer) as the reader sees it (media/qp.py)."""
    from streamfix.media.qp import EXPORT_QP_OPTIONS, frame_quantizer
    from streamfix.restore.strength import picture_kind

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {**stream.codec_context.options, **EXPORT_QP_OPTIONS}
        for frame in container.decode(stream):
            found = frame_quantizer(frame)
            if found is not None:
                out.append((picture_kind(frame.pict_type) or "P", found[1]))
    return out


def av1_inter_quantizers(path: Path) -> list[int]:
    """base_q_idx of every frame an AV1 file codes after its first packet (the key
    frame), all hidden frames included: what the reader's window averages at run time
    (media/av1_quantizer.py)."""
    from streamfix.media.av1_quantizer import Av1Quantizer

    values: list[int] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        reader = Av1Quantizer(stream)
        for i, packet in enumerate(container.demux(stream)):
            coded = reader.coded(packet)
            if i > 0 and coded:
                values.extend(coded)
    return values


def inter_bpp(path: Path) -> float:
    """Mean bits per pixel of the packets that are not keyframes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sizes = [p.size for p in container.demux(stream) if p.size and not p.is_keyframe]
        w, h = stream.codec_context.width, stream.codec_context.height
    return 8.0 * float(np.mean(sizes)) / (w * h) if sizes else float("nan")


def clip_gains(restorer: Restorer, path: Path, pristine: list[np.ndarray]) -> np.ndarray:
    """Mean luma PSNR gain of the clip's frames for each QP of QP_GRID."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    base = np.mean([psnr(p, plane_to_array(d, 0)) for p, d in zip(pristine, decoded)])
    gains = []
    for qp in QP_GRID:
        outs = [restorer.restore(d, frame_qp=float(qp)) for d in decoded]
        gains.append(np.mean([psnr(p, plane_to_array(o, 0)) for p, o in zip(pristine, outs)]) - base)
    return np.array(gains)


def collect(codec: str, images: list[Path], clips: int, seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """(quantizer feature, gains over QP_GRID) for each clip."""
    encoder, options, (low, high) = CODECS[codec]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            Restorer("video-x264-qp", engine="onnxruntime", device="cpu", gate="off", log=lambda m: None) as restorer:
        for i in range(clips):
            rng = np.random.default_rng([seed, i])
            frames = camera_clip(rng, images, SIZE, FRAMES)
            if frames is None:
                continue
            pristine = [plane_to_array(f, 0) for f in frames]
            path = Path(tmp) / f"{i}.mkv"
            encode_frames(frames, path, codec=encoder, options=options(int(rng.integers(low, high + 1))),
                          container="matroska")
            feature = quantizer_feature(codec, path)
            if np.isfinite(feature):
                rows.append((feature, clip_gains(restorer, path, pristine)))
    return rows


def fit(rows: list[tuple[float, np.ndarray]]) -> tuple[float, float, float]:
    """(a, b, rms error) of best QP = a + b * feature, over clips whose best gain is
    positive (elsewhere the gate leaves the frames alone anyway)."""
    sel = [(x, QP_GRID[int(np.argmax(g))]) for x, g in rows if g.max() > 0]
    x, y = np.array(sel, dtype=float).T
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b), float(np.sqrt(np.mean((a + b * x - y) ** 2)))


def kept_gain(rows: list[tuple[float, np.ndarray]], a: float, b: float, margin: float) -> tuple[float, float]:
    """Mean gain at the fitted QP less `margin` (nearest grid point) and at the best QP."""
    at_fit, best = [], []
    for x, g in rows:
        qp = a + b * x - margin
        at_fit.append(g[int(np.argmin([abs(q - qp) for q in QP_GRID]))] if qp >= 24 else 0.0)
        best.append(max(g.max(), 0.0))
    return float(np.mean(at_fit)), float(np.mean(best))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--codecs", nargs="+", default=list(CODECS), choices=list(CODECS))
    parser.add_argument("--margin", type=float, default=2.0)
    args = parser.parse_args(argv)
    images = find_images(tuple(args.folders))
    for codec in args.codecs:
        rows = collect(codec, images, args.clips)
        a, b, rms = fit(rows)
        kept, best = kept_gain(rows, a, b, args.margin)
        print(f"{codec}: best QP = {a:.2f} + {b:.4f} * {FEATURES[codec]}, rms error {rms:.2f} QP over {len(rows)} "
              f"clips; gain at the fit - {args.margin:g}: {kept:+.3f} dB, at the best QP: {best:+.3f} dB", flush=True)


if __name__ == "__main__":
    main()
