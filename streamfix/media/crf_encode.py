"""Encode a list of frames at a constant rate factor (`encode_at_crf`), or with any
other encoder settings (`encode_frames`): the one place that makes the low-bitrate
encodes used for evaluation, training clips, calibrations and benchmarks, so they
all come from the same loop (yuv420p, 25 fps, fresh timestamps, the encoder's own GOP).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from streamfix.media.planes import reformat

RATE = 25

# x264 set up like a hardware encoder at a fixed QP per frame type (QSV, NVENC and
# VA-API "CQP"): no adaptive quantization, no macroblock tree, no psychovisual tuning
# or trellis, I- and B-frames at the P-frames' QP. Their QP maps are flat where x264's
# own vary per macroblock. The codec name `libx264-hw` asks for it (the CRF is the QP).
HARDWARE_LIKE_X264 = ("aq-mode=0:mbtree=0:psy=0:trellis=0:ipratio=1.0:pbratio=1.0:bframes=2:b-adapt=0:"
                      "scenecut=0:keyint=250")
HARDWARE_LIKE = "libx264-hw"


def encode_at_crf(frames: list[av.VideoFrame], target: str | Path | BinaryIO, *, codec: str, crf: int,
                  preset: str = "medium", threads: int = 0, x265_params: str = "",
                  options: dict[str, str] | None = None) -> None:
    """Write `frames` (any pixel format; converted to yuv420p) as MP4 at 25 fps.
    `codec` libx264-hw is x264 set up like a hardware encoder, with `crf` as its QP.

    threads=0 lets the encoder choose; training clips use 1 so that many small encodes
    can share a busy machine. `x265_params` is appended to the libx265 options
    (e.g. "csv=...:csv-log-level=1"); `options` are further encoder options (e.g. a
    fixed GOP: {"g": "25", "keyint_min": "25", "sc_threshold": "0"}).
    """
    options = {"crf": str(crf), "preset": preset, **(options or {})}
    if codec == HARDWARE_LIKE:
        codec = "libx264"
        del options["crf"]
        options["x264-params"] = f"qp={crf}:{HARDWARE_LIKE_X264}"
    if threads:
        options["threads"] = str(threads)
    if codec == "libx265":
        params = ["log-level=error"] + (["pools=1", "frame-threads=1"] if threads == 1 else [])
        options["x265-params"] = ":".join(params + ([x265_params] if x265_params else []))
    encode_frames(frames, target, codec=codec, options=options)


def encode_frames(frames: list[av.VideoFrame], target: str | Path | BinaryIO, *, codec: str,
                  options: dict[str, str], container: str = "mp4") -> None:
    """Write `frames` (any pixel format; converted to yuv420p) at 25 fps with encoder
    `codec` and exactly `options` (other rate controls than CRF: a constant QP, a
    bitrate, VP9's own CRF), into a `container` file."""
    target = str(target) if isinstance(target, Path) else target
    with av.open(target, "w", format=container) as out:
        stream = out.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.options = dict(options)
        for i, frame in enumerate(frames):
            frame = reformat(frame, format="yuv420p")
            # Fresh timestamps: a decoded source carries its own time base, which must
            # not mix with the one given to the encoder. And no picture type: a decoded
            # frame keeps its I/P/B type, which the encoder obeys (every frame of a
            # .y4m source decodes as I, which made all-intra clips); the GOP is the
            # encoder's own choice.
            frame.pts, frame.time_base = i, Fraction(1, RATE)
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
