"""Tiny media files for tests, written with PyAV into a directory the test owns.

Every test builds the media it needs instead of reading shared files, so each case
(B-frames with a late start, variable frame rate, 10-bit, rotation, a resolution
change, broken files, ...) is visible in the test itself and costs milliseconds.
Keep clips tiny (64x48 to 160x120, a few dozen frames): the suite runs on 2 cores.

`write_clip` is the general writer; the named functions below it are the cases that
real inputs bring and that must not crash or desynchronise anything. `probe`
(mediaprobe.py, re-exported here) reads back what an ffprobe user would look at, so
fidelity tests compare input and output.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.subtitles.subtitle import SubtitleSet
from PIL import Image

from streamfix.media.planes import array_to_plane, bit_depth

# Tests read outputs back with these; they live in mediaprobe.py.
from mediaprobe import (COLOR_KEYS, Probe, StreamProbe, jpeg_bytes_quality, packet_times,  # noqa: F401
                        probe, stream_end)

# Text subtitle encoders (mov_text, subrip, ass) refuse to open without an ASS header,
# and they take their events in ASS "Dialogue" field order.
ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""

# Which text subtitle codec each container accepts.
SUBTITLE_CODECS = {".mp4": "mov_text", ".mov": "mov_text", ".mkv": "subrip"}

# BT.709 everywhere (AVCOL_* enum value 1), limited range (1): an input whose tags a
# player would honour, distinct from the "unspecified" (2 / 0) that untagged files get.
BT709_TAGS = {"color_range": 1, "color_primaries": 1, "color_trc": 1, "colorspace": 1}
# BT.601 (SMPTE 170M) tags, full range: yuvj-style sources such as phone cameras.
BT601_FULL_TAGS = {"color_range": 2, "color_primaries": 6, "color_trc": 6, "colorspace": 6}

MS = Fraction(1, 1000)


def pattern_planes(index: int, width: int, height: int, pix_fmt: str) -> av.VideoFrame:
    """Frame `index` of a deterministic moving test pattern in `pix_fmt`.

    Gradients, a moving bright square and fixed noise: enough texture that encoders
    produce real blocks and QP values, and consecutive frames differ (so a frame
    swapped or dropped in the output shows up in a pixel comparison).
    """
    frame = av.VideoFrame(width, height, pix_fmt)
    depth = bit_depth(frame)
    top = (1 << depth) - 1
    rng = np.random.default_rng(1234)
    for i, plane in enumerate(frame.planes):
        h, w = plane.height, plane.width
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        values = (xx / max(w - 1, 1) * 0.5 + yy / max(h - 1, 1) * 0.3 + 0.1 * i) % 1.0
        if i == 0 or pix_fmt in ("rgb24", "gbrp"):
            side = max(2, min(h, w) // 3)
            x0 = (index * 3) % max(w - side, 1)
            y0 = (index * 2) % max(h - side, 1)
            values[y0 : y0 + side, x0 : x0 + side] = 0.9
            values += rng.normal(0.0, 0.04, size=values.shape)
        array_to_plane(frame, i, np.clip(np.round(values * top), 0, top))
    return frame


def _packed_pattern(index: int, width: int, height: int, pix_fmt: str) -> av.VideoFrame:
    """Packed formats (rgb24, ...) are built as planar RGB and converted."""
    if pix_fmt in ("rgb24", "bgr24", "rgba"):
        planar = pattern_planes(index, width, height, "gbrp")
        return planar.reformat(format=pix_fmt)
    return pattern_planes(index, width, height, pix_fmt)


def make_frame(index: int, width: int, height: int, pix_fmt: str, pts: int | None = None,
               time_base: Fraction | None = None) -> av.VideoFrame:
    frame = _packed_pattern(index, width, height, pix_fmt)
    frame.pts = index if pts is None else pts
    frame.time_base = time_base or Fraction(1, 25)
    return frame


@dataclass(frozen=True, slots=True, kw_only=True)
class Clip:
    """What `write_clip` wrote: the facts tests compare outputs against."""

    path: Path
    width: int
    height: int
    pix_fmt: str
    frame_pts: tuple[int, ...]   # in `time_base`, in presentation order
    time_base: Fraction
    audio_packets: int = 0
    subtitle_events: tuple[tuple[float, float, str], ...] = ()


def write_clip(
    path: str | Path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    start_s: float = 0.0,
    frame_pts_ms: list[int] | None = None,
    encoder_options: dict[str, str] | None = None,
    color: dict[str, int] | None = None,
    rotation: int = 0,
    audio: bool = False,
    subtitles: str | None = None,
    container_format: str | None = None,
) -> Clip:
    """Encode the test pattern into `path` (container from the suffix or `container_format`).

    Timestamps are in milliseconds: frame i sits at `start_s + i / rate` unless
    `frame_pts_ms` gives every frame's pts (variable frame rate). `audio` adds an AAC
    tone covering the video; `subtitles` adds two text events ("mov_text", "subrip" or
    "ass"; "auto" picks the container's usual one). `rotation` is counter-clockwise
    degrees, written as a display matrix.
    """
    path = Path(path)
    start_ms = round(start_s * 1000)
    if frame_pts_ms is None:
        frame_pts_ms = [start_ms + round(i * 1000 / rate) for i in range(frames)]
    # AVI has one fixed frame period: its time base must be 1/rate, not milliseconds.
    is_avi = (container_format or path.suffix.lower().lstrip(".")) == "avi"
    time_base = Fraction(1, rate) if is_avi else MS
    with av.open(str(path), "w", format=container_format) as out:
        video = _add_video(out, codec, width, height, pix_fmt, rate, time_base, encoder_options, color)
        if rotation:
            video.set_display_rotation(rotation)
        audio_stream = _add_audio(out) if audio else None
        sub_codec = SUBTITLE_CODECS.get(path.suffix.lower(), "ass") if subtitles == "auto" else subtitles
        sub_stream = _add_subtitles(out, sub_codec) if sub_codec else None

        frame_pts = [round(ms / 1000 / time_base) for ms in frame_pts_ms]
        for i, pts in enumerate(frame_pts):
            frame = make_frame(i, width, height, pix_fmt, pts=pts, time_base=time_base)
            for key, value in (color or {}).items():
                setattr(frame, key, value)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))

        end_ms = frame_pts_ms[-1] + round(1000 / rate)
        audio_packets = _write_tone(out, audio_stream, frame_pts_ms[0], end_ms) if audio_stream else 0
        events: tuple[tuple[float, float, str], ...] = ()
        if sub_stream is not None:
            events = _write_events(out, sub_stream, frame_pts_ms[0], end_ms)
    return Clip(path=path, width=width, height=height, pix_fmt=pix_fmt,
                frame_pts=tuple(sorted(frame_pts)), time_base=time_base,
                audio_packets=audio_packets, subtitle_events=events)


def _add_video(out, codec, width, height, pix_fmt, rate, time_base, encoder_options, color):
    # Small-file x264 defaults: tests want real artifacts and QP values, fast.
    options = {"crf": "30", "preset": "veryfast"} if codec in ("libx264", "libx265") else {}
    options.update(encoder_options or {})
    video = out.add_stream(codec, rate=rate, options=options)
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    video.time_base = time_base
    video.codec_context.time_base = time_base
    for key, value in (color or {}).items():
        setattr(video.codec_context, key, value)
    return video


def _add_audio(out: av.container.OutputContainer) -> av.audio.stream.AudioStream:
    stream = out.add_stream("aac", rate=48000)
    stream.layout = "stereo"
    return stream


def _write_tone(out, stream, start_ms: int, end_ms: int) -> int:
    """A 440 Hz tone from start_ms to end_ms, in 1024-sample AAC frames."""
    rate, size = 48000, 1024
    first = start_ms * rate // 1000
    count = -(-(end_ms - start_ms) * rate // (1000 * size))
    packets = 0
    for k in range(count):
        t = (first + k * size + np.arange(size)) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = first + k * size
        frame.time_base = Fraction(1, rate)
        encoded = stream.encode(frame)
        packets += len(encoded)
        out.mux(encoded)
    flushed = stream.encode(None)
    out.mux(flushed)
    return packets + len(flushed)


def _add_subtitles(out, codec: str):
    stream = out.add_stream(codec)
    stream.codec_context.subtitle_header = ASS_HEADER
    return stream


def _write_events(out, stream, start_ms: int, end_ms: int) -> tuple[tuple[float, float, str], ...]:
    """Two subtitle events inside the video's span; returns (start_s, end_s, text)."""
    span = end_ms - start_ms
    events = []
    for k, (a, b) in enumerate([(0.1, 0.4), (0.5, 0.8)]):
        t0, t1 = start_ms + round(span * a), start_ms + round(span * b)
        text = f"line {k}"
        # The encoders take ASS dialogue fields: ReadOrder, Layer, Style, Name,
        # MarginL, MarginR, MarginV, Effect, Text. pts is in microseconds (AV_TIME_BASE).
        event = SubtitleSet.create(text=f"{k},0,Default,,0,0,0,,{text}".encode(),
                                   start=0, end=t1 - t0, pts=t0 * 1000)
        packet = stream.codec_context.encode_subtitle(event)
        packet.stream = stream
        packet.time_base = Fraction(1, 1_000_000)
        packet.pts = packet.dts = t0 * 1000
        packet.duration = (t1 - t0) * 1000
        out.mux(packet)
        events.append((t0 / 1000, t1 / 1000, text))
    return tuple(events)


# --- the cases real inputs bring ------------------------------------------------


def h264_bframes_late_start(path: str | Path, *, start_s: float = 1.5, frames: int = 24, **kw) -> Clip:
    """H.264 with B-frames (so pts != dts order) whose first frame is not at 0."""
    options = {"bf": "3", "g": "12"}
    options.update(kw.pop("encoder_options", {}))
    return write_clip(path, start_s=start_s, frames=frames, encoder_options=options, **kw)


def h264_with_audio_and_subtitles(path: str | Path, **kw) -> Clip:
    """H.264 + AAC + a text subtitle stream (mov_text in mp4/mov, subrip in mkv)."""
    kw.setdefault("start_s", 0.5)
    return h264_bframes_late_start(path, audio=True, subtitles="auto", **kw)


def variable_frame_rate(path: str | Path, **kw) -> Clip:
    """Irregular frame spacing (33, 41, 57, 120 ms, ...), as phones and screen capture make."""
    gaps = [33, 41, 57, 120, 33, 33, 200, 17, 40, 40, 66, 33]
    pts, t = [], 200
    for gap in gaps:
        pts.append(t)
        t += gap
    return write_clip(path, frame_pts_ms=pts, **kw)


def odd_size(path: str | Path, *, width: int = 65, height: int = 49, **kw) -> Clip:
    """Odd width and height. H.264/HEVC 4:2:0 cannot code them, so FFV1 by default."""
    kw.setdefault("codec", "ffv1")
    return write_clip(path, width=width, height=height, **kw)


def ten_bit(path: str | Path, **kw) -> Clip:
    """yuv420p10le H.264 (High 10)."""
    return write_clip(path, pix_fmt="yuv420p10le", **kw)


def colour_tagged(path: str | Path, *, tags: dict[str, int] | None = None, **kw) -> Clip:
    """Range/primaries/transfer/matrix tags on the stream and frames (BT.709 by default)."""
    return write_clip(path, color=tags or BT709_TAGS, **kw)


def full_range_yuvj(path: str | Path, **kw) -> Clip:
    """yuvj420p (full range) H.264, as phone cameras and MJPEG-derived files have."""
    return write_clip(path, pix_fmt="yuvj420p", color=BT601_FULL_TAGS, **kw)


def rotated(path: str | Path, *, degrees: int = 90, **kw) -> Clip:
    """A display matrix that tells players to rotate (portrait phone video)."""
    return write_clip(path, rotation=degrees, **kw)


def resolution_change(path: str | Path, *, first: tuple[int, int] = (64, 48),
                      second: tuple[int, int] = (80, 64), frames_each: int = 6) -> Clip:
    """MPEG-TS whose H.264 stream switches size after `frames_each` frames, as
    broadcast and adaptive streams do. Returns the first size; the switch is at
    frame index `frames_each`."""
    path = Path(path)
    tb = Fraction(1, 25)
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "30", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *first, "yuv420p"
        for i in range(frames_each):
            out.mux(stream.encode(make_frame(i, *first, "yuv420p", pts=i, time_base=tb)))
        out.mux(stream.encode(None))
        # A second encoder continues the same output stream at the new size; TS carries
        # the new SPS in-band, exactly like a broadcast resolution switch.
        second_encoder = av.CodecContext.create("libx264", "w")
        second_encoder.width, second_encoder.height, second_encoder.pix_fmt = *second, "yuv420p"
        second_encoder.time_base = tb
        second_encoder.framerate = Fraction(25)
        second_encoder.options = {"crf": "30", "preset": "veryfast"}
        later = [make_frame(i, *second, "yuv420p", pts=i, time_base=tb)
                 for i in range(frames_each, 2 * frames_each)]
        for frame in [*later, None]:
            for packet in second_encoder.encode(frame):
                packet.stream = stream
                packet.time_base = tb
                out.mux(packet)
    return Clip(path=path, width=first[0], height=first[1], pix_fmt="yuv420p",
                frame_pts=tuple(range(2 * frames_each)), time_base=tb)


def mjpeg(path: str | Path, *, qscale: int = 5, **kw) -> Clip:
    """Motion JPEG (AVI by default suffix): each packet is a whole JPEG image."""
    kw.setdefault("pix_fmt", "yuvj420p")
    path = Path(path)
    clip = write_clip(path, codec="mjpeg",
                      encoder_options={"qmin": str(qscale), "qmax": str(qscale)}, **kw)
    return clip


def audio_only(path: str | Path, *, seconds: float = 0.5) -> Path:
    """An AAC file with no video stream."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = _add_audio(out)
        _write_tone(out, stream, 0, round(seconds * 1000))
    return path


def zero_frames(path: str | Path) -> Path:
    """A Matroska file that declares an H.264 video stream but holds no frame of it
    (only audio): a capture that stopped before the first video frame."""
    path = Path(path)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = _add_audio(out)
        out.start_encoding()
        _write_tone(out, audio, 0, 300)
    return path


def text_named_like_video(path: str | Path) -> Path:
    """A text file with a video suffix: what a wrong download or a typo gives."""
    path = Path(path)
    path.write_text("this is not a video, only some text\n" * 20)
    return path


def empty_file(path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def truncated_copy(source: str | Path, target: str | Path, *, keep: float = 0.6) -> Path:
    """The first `keep` fraction of `source`'s bytes: an interrupted download or copy.
    (An mp4 whose index sits at the end cannot be opened at all once cut; MKV and
    MPEG-TS decode up to the cut.)"""
    data = Path(source).read_bytes()
    target = Path(target)
    target.write_bytes(data[: int(len(data) * keep)])
    return target


# --- stills -----------------------------------------------------------------------


def still_pixels(width: int = 64, height: int = 48, *, mode: str = "L") -> np.ndarray:
    """Deterministic still content: (h, w) for L, (h, w, 3) for RGB."""
    frame = make_frame(3, width, height, "gbrp" if mode == "RGB" else "gray")
    if mode == "RGB":
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray()


def jpeg_still(path: str | Path, *, quality: int = 10, mode: str = "L",
               width: int = 64, height: int = 48) -> Path:
    """A JPEG written by PIL (libjpeg) with the standard tables at `quality`."""
    path = Path(path)
    Image.fromarray(still_pixels(width, height, mode=mode), mode=mode).save(path, "JPEG", quality=quality)
    return path


def png_still(path: str | Path, *, mode: str = "RGB", width: int = 64, height: int = 48) -> Path:
    path = Path(path)
    Image.fromarray(still_pixels(width, height, mode=mode), mode=mode).save(path, "PNG")
    return path
