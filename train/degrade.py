"""Degradations made by real encoders: JPEG through libjpeg (PIL), H.264/HEVC through
libx264/libx265 (PyAV). Nothing here simulates an artifact.

JPEG pairs are made per patch on the fly: a grayscale JPEG codes each 8x8 block on
its own, so compressing an 8-aligned crop gives exactly the blocks that compressing
the whole image would.

Video pairs come from short synthetic clips: a window moves over a still picture
(pan and zoom, or standing still), the frames are converted to 4:2:0 YUV, encoded at
a random CRF/preset with B-frames, decoded again with the decoder's per-macroblock
QP exported, and cached on disk, so both intra and inter (P/B) artifacts are learned.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamfix.core.jpeg import jpeg_roundtrip
from streamfix.media.crf_encode import encode_at_crf
from streamfix.media.planes import plane_to_array, reformat
from streamfix.media.qp import frame_qp_map, qp_map_to_pixels

from streamfix.train.config import JpegConfig, VideoConfig
from streamfix.train.data import aligned_crop_origin, augment


# ----------------------------------------------------------------------------- JPEG
def draw_quality(rng: np.random.Generator, cfg: JpegConfig) -> int:
    low, high = cfg.focus_range if rng.random() < cfg.focus_share else cfg.quality_range
    return int(rng.integers(low, high + 1))


def jpeg_patch(rng: np.random.Generator, image: np.ndarray, patch: int, cfg: JpegConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """(clean, compressed, quality) for one random augmented, 8-aligned patch."""
    y, x = aligned_crop_origin(rng, image.shape, patch, 8)
    (clean,) = augment([image[y : y + patch, x : x + patch]], int(rng.integers(8)))
    quality = draw_quality(rng, cfg)
    return clean, jpeg_roundtrip(clean, quality), quality


# ---------------------------------------------------------------------------- video
@dataclass(frozen=True, slots=True)
class Clip:
    clean: np.ndarray  # T x H x W uint8, pristine luma
    decoded: np.ndarray  # T x H x W uint8, luma after encode + decode
    qp: np.ndarray  # T x H x W float32, per-pixel QP (NaN when the decoder gave none)
    codec: str
    crf: int
    preset: str


def _camera_frames(rng: np.random.Generator, rgb: Image.Image, size: int, frames: int) -> list[np.ndarray]:
    """`frames` RGB views of `rgb` by a camera that pans and zooms (or stands still)."""
    w, h = rgb.size
    still = rng.random() < 0.2
    velocity = np.zeros(2) if still else rng.uniform(-3.0, 3.0, 2)
    zoom = 1.0 if still or rng.random() < 0.5 else float(rng.uniform(0.98, 1.02))
    reach = size * max(1.0, zoom ** frames) / 2 + np.abs(velocity) * frames + 2
    centre = np.array([rng.uniform(reach[0], w - reach[0]), rng.uniform(reach[1], h - reach[1])])
    views = []
    for t in range(frames):
        s = zoom**t
        cx, cy = centre + velocity * t
        affine = (s, 0.0, cx - size / 2 * s, 0.0, s, cy - size / 2 * s)
        views.append(np.asarray(rgb.transform((size, size), Image.AFFINE, affine, Image.BICUBIC)))
    return views


def camera_clip(rng: np.random.Generator, images: list, size: int, frames: int) -> list[av.VideoFrame] | None:
    """A clip for the calibrations: `frames` 4:2:0 frames of a camera moving over a
    picture drawn from `images`, or None when the picture is too small for it."""
    with Image.open(images[int(rng.integers(len(images)))]) as im:
        rgb = im.convert("RGB")
    if min(rgb.size) < 2 * size:
        return None
    return yuv420_frames(_camera_frames(rng, rgb, size, frames))


def yuv420_frames(views: list[np.ndarray]) -> list[av.VideoFrame]:
    """RGB views as the 4:2:0 frames an encoder takes (through `reformat`, whose single
    swscale thread makes the same view give the same frame every time)."""
    return [reformat(av.VideoFrame.from_ndarray(np.ascontiguousarray(v), format="rgb24"), format="yuv420p")
            for v in views]


def encode_clip(frames_yuv: list[av.VideoFrame], codec: str, crf: int, preset: str) -> bytes:
    buf = io.BytesIO()
    encode_at_crf(frames_yuv, buf, codec=codec, crf=crf, preset=preset, threads=1)
    return buf.getvalue()


def decode_clip(data: bytes) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Decoded luma planes and per-macroblock QP maps (None where not exported)."""
    lumas, qps = [], []
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for frame in container.decode(stream):
            lumas.append(plane_to_array(frame, 0))
            qps.append(frame_qp_map(frame))
    return lumas, qps


def make_clip(rng: np.random.Generator, rgb: Image.Image, cfg: VideoConfig, crf: int | None = None) -> Clip:
    size = cfg.clip_size
    views = _camera_frames(rng, rgb, size, cfg.clip_frames)
    frames = yuv420_frames(views)
    clean = np.stack([plane_to_array(f, 0) for f in frames])
    codec = str(rng.choice(cfg.codecs))
    crf = int(rng.integers(cfg.crf_range[0], cfg.crf_range[1] + 1)) if crf is None else crf
    preset = str(rng.choice(cfg.presets))
    lumas, qps = decode_clip(encode_clip(frames, codec, crf, preset))
    if len(lumas) != len(frames):
        raise RuntimeError(f"{codec} returned {len(lumas)} frames for {len(frames)}")
    qp = np.stack([
        qp_map_to_pixels(q, size, size) if q is not None else np.full((size, size), np.nan, np.float32)
        for q in qps
    ])
    return Clip(clean, np.stack(lumas), qp, codec, crf, preset)


def save_clip(path: Path, clip: Clip) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, clean=clip.clean, decoded=clip.decoded, qp=clip.qp.astype(np.float16),
             meta=json.dumps({"codec": clip.codec, "crf": clip.crf, "preset": clip.preset}))
    tmp.replace(path)


def load_clip(path: Path) -> Clip:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return Clip(z["clean"], z["decoded"], z["qp"].astype(np.float32), meta["codec"], meta["crf"], meta["preset"])


def build_clip_cache(folder: Path, images: list[Path], count: int, cfg: VideoConfig, seed: int,
                     crfs: tuple[int, ...] = (), log=print) -> list[Path]:
    """Make (or reuse) `count` cached clips in `folder`; clip i depends only on
    (seed, i), so an interrupted build resumes where it stopped."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    pictures: dict[int, Image.Image] = {}
    for i in range(count):
        path = folder / f"clip{i:05d}.npz"
        paths.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, i])
        k = int(rng.integers(len(images)))
        if k not in pictures:
            with Image.open(images[k]) as im:
                pictures[k] = im.convert("RGB")
        crf = crfs[i % len(crfs)] if crfs else None
        save_clip(path, make_clip(rng, pictures[k], cfg, crf))
        if (i + 1) % 200 == 0:
            log(f"clips: {i + 1}/{count} in {folder}")
    return paths


def clip_patch(rng: np.random.Generator, clip: Clip, patch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, decoded, qp) for one random augmented patch of a random frame,
    aligned to the 8x8 transform grid."""
    t = int(rng.integers(clip.clean.shape[0]))
    y, x = aligned_crop_origin(rng, clip.clean.shape[1:], patch, 8)
    crop = (slice(y, y + patch), slice(x, x + patch))
    return tuple(augment([clip.clean[t][crop], clip.decoded[t][crop], clip.qp[t][crop]], int(rng.integers(8))))
