"""How the restored video is encoded: the encode config and the output pixel format.

The default is x264 preset medium at a CRF chosen from the input's own quantizer
(pipeline/output_plan.py; FALLBACK_CRF where it cannot be measured), because the
output must not add back the artifacts just removed. The output keeps the input's pixel format when the encoder
takes it, otherwise the nearest one it takes (same chroma layout and bit depth where
possible), so 8-bit stays 8-bit and 10-bit stays 10-bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import av

from streamfix.core.errors import OptionError
from streamfix.media.encoder_check import value_problem
from streamfix.media.planes import bit_depth

DEFAULT_CODEC = "libx264"
DEFAULT_PRESET = "medium"
# Containers that cannot hold H.264, and the encoder of the codec they are made for.
CONTAINER_CODECS = {"webm": "libvpx-vp9", "ogg": "libtheora"}
# Encoders that cannot code an odd width/height with subsampled (4:2:0/4:2:2) chroma:
# for odd sizes they get the 4:4:4 format of the same bit depth instead.
EVEN_SIZE_ENCODERS = frozenset({"libx264", "libx265", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "libsvtav1"})
# The crf of "auto" where the input's quantizer is unknown: low, so the output does
# not add back the artifacts just removed.
FALLBACK_CRF = 16
_BITRATE_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodeConfig:
    """How the restored video is encoded (the audio/subtitles are never re-encoded)."""

    codec: str = DEFAULT_CODEC        # a container that cannot hold H.264 (webm) gets its own usual codec
    # "auto": chosen from the input's quantizer (pipeline/output_plan.py), and the
    # input's video copied unchanged when nothing in it needs restoring; where the
    # input cannot be measured (pipes, streams), FALLBACK_CRF. Ignored by codecs
    # without a crf option.
    crf: int | Literal["auto"] | None = "auto"
    bitrate: str | None = None        # "4M", "800k": a target bitrate instead of crf
    preset: str = DEFAULT_PRESET      # ignored by codecs without a preset option
    pix_fmt: str | None = None        # None: keep the input's
    options: dict[str, str] = field(default_factory=dict)   # extra encoder options
    drop_uncopyable: bool = False     # drop (and log) streams the container cannot hold

    def __post_init__(self) -> None:
        if self.crf is not None and self.crf != "auto" and not 0 <= self.crf <= 63:
            raise OptionError(f"crf {self.crf} is out of range; use 0 (lossless) to 51 for x264")
        if self.bitrate is not None:
            parse_bitrate(self.bitrate)
        if self.pix_fmt is not None:
            try:
                av.VideoFormat(self.pix_fmt)
            except (ValueError, av.error.FFmpegError):
                raise OptionError(f"unknown pixel format {self.pix_fmt!r}; try yuv420p or yuv420p10le") from None


def parse_bitrate(text: str) -> int:
    """'4M' -> 4000000, '800k' -> 800000, '1500000' -> 1500000."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _BITRATE_UNITS else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise OptionError(f"bitrate {text!r} is not a number like 4M or 800k") from None
    if number <= 0:
        raise OptionError(f"bitrate {text!r} must be positive")
    return int(number * _BITRATE_UNITS[unit])


def codec_for(config: EncodeConfig, format_name: str) -> str:
    """The encoder to use: the one configured, except that H.264 going into a
    container that cannot hold it (webm) becomes the encoder of that container's
    usual codec (the caller says so), instead of failing after the user asked for
    nothing but a .webm file."""
    codec = config.codec
    if codec == DEFAULT_CODEC and format_name in CONTAINER_CODECS:
        codec = CONTAINER_CODECS[format_name]
    if codec == "libsvtav1":
        # SVT-AV1 prints a banner of info lines to stderr by itself; errors only.
        os.environ.setdefault("SVT_LOG", "1")
    return codec


def encoder_options(config: EncodeConfig, codec: str | None = None) -> dict[str, str]:
    """The FFmpeg options for `config`: crf and preset only where the encoder has them.
    The default preset name is left out where the encoder's presets are not names
    (SVT-AV1 takes numbers); a preset that was asked for is always passed on, so a
    wrong one is an error, not ignored."""
    codec = codec or codec_for(config, "")
    try:
        private = {o.name for o in av.CodecContext.create(codec, "w").supported_options.private}
    except (ValueError, av.error.FFmpegError):
        private = set()
    options: dict[str, str] = {}
    if config.crf is not None and config.bitrate is None and "crf" in private:
        options["crf"] = str(FALLBACK_CRF if config.crf == "auto" else config.crf)
    if "preset" in private and not (config.preset == DEFAULT_PRESET and value_problem(codec, "preset", config.preset)):
        options["preset"] = config.preset
    # YAML turns `slices: 4` into an int; FFmpeg options are strings.
    options.update({key: str(value) for key, value in config.options.items()})
    return options


def choose_pix_fmt(codec: str, wanted: str, width: int, height: int) -> str:
    """`wanted` if the encoder takes it, else the nearest format it takes.

    Nearest = same chroma layout and bit depth, then same layout at any depth (deeper
    first), then the encoder's first format. Odd sizes with subsampled chroma become
    4:4:4 for encoders that need even sizes (H.264/HEVC cannot code them otherwise)."""
    want = av.VideoFormat(wanted)
    if (width % 2 or height % 2) and codec in EVEN_SIZE_ENCODERS and _subsampled(want):
        wanted = _full_chroma(want)
        want = av.VideoFormat(wanted)
    try:
        offered = [f.name for f in (av.Codec(codec, "w").video_formats or ())]
    except av.error.FFmpegError:
        offered = []
    if not offered or wanted in offered:
        return wanted

    def layout(f: av.VideoFormat) -> tuple:
        # RGB counts as 4:4:4, so an RGB still going into H.264 becomes yuv444p.
        return (len(f.components), f.chroma_width(64), f.chroma_height(64))

    formats = [av.VideoFormat(name) for name in offered]
    same = [f for f in formats if layout(f) == layout(want)]
    depth = bit_depth(want)
    exact_depth = [f for f in same if bit_depth(f) == depth]
    if exact_depth:
        return exact_depth[0].name
    if same:
        return max(same, key=lambda f: (bit_depth(f) >= depth, -abs(bit_depth(f) - depth))).name
    return offered[0]


def _subsampled(f: av.VideoFormat) -> bool:
    return len(f.components) >= 3 and (f.chroma_width(64) < 64 or f.chroma_height(64) < 64)


def _full_chroma(f: av.VideoFormat) -> str:
    """yuv420p -> yuv444p, yuvj420p -> yuvj444p, yuv420p10le -> yuv444p10le."""
    name = f.name
    for sub in ("420", "422", "411", "440"):
        if sub in name:
            return name.replace(sub, "444", 1)
    return "yuv444p"
