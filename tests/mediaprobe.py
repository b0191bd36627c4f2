"""Read back a media file the way an ffprobe user would look at it, for comparing
an output with its input in tests: streams, every packet's pts/size/bytes/duration,
every decoded frame's pts and format, colour tags, rotation, optionally the luma.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamfix.media.planes import plane_to_array

@dataclass(slots=True)
class StreamProbe:
    index: int
    type: str
    codec: str
    time_base: Fraction | None
    start_time: int | None
    duration: int | None
    packet_pts: list[int | None] = field(default_factory=list)
    packet_sizes: list[int] = field(default_factory=list)
    packet_durations: list[int | None] = field(default_factory=list)
    packet_bytes: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Probe:
    """Streams and the decoded video frames of a file, as ffprobe would report them."""

    format_name: str
    streams: list[StreamProbe]
    width: int = 0
    height: int = 0
    pix_fmt: str | None = None
    frame_pts: list[int | None] = field(default_factory=list)
    frame_formats: list[str] = field(default_factory=list)
    frame_sizes: list[tuple[int, int]] = field(default_factory=list)
    color: dict[str, int] = field(default_factory=dict)         # stream (codec) level
    frame_color: dict[str, int] = field(default_factory=dict)   # first decoded frame
    rotation: int = 0
    video_time_base: Fraction | None = None
    luma: list[np.ndarray] = field(default_factory=list)

    def stream(self, kind: str) -> StreamProbe:
        return next(s for s in self.streams if s.type == kind)

    def frame_times(self) -> list[float]:
        """Each decoded frame's presentation time in seconds (rounded to 0.1 ms)."""
        return [round(float(pts * self.video_time_base), 4) for pts in self.frame_pts]


def packet_times(stream: StreamProbe) -> list[float]:
    """Each packet's pts in seconds (rounded to 0.1 ms), comparable across containers."""
    return [round(float(pts * stream.time_base), 4) for pts in stream.packet_pts]


def stream_end(stream: StreamProbe) -> float:
    """Where a stream's last packet ends, in seconds: its effective duration."""
    ends = [(pts + (dur or 0)) * stream.time_base
            for pts, dur in zip(stream.packet_pts, stream.packet_durations) if pts is not None]
    return round(float(max(ends)), 4)


COLOR_KEYS = ("color_range", "color_primaries", "color_trc", "colorspace")


def probe(path: str | Path, *, keep_luma: bool = False) -> Probe:
    """Demux and decode `path` completely; every packet's pts per stream, every
    frame's pts, colour tags, rotation. Packets of size 0 (demuxer flush) are skipped."""
    with av.open(str(path)) as container:
        result = Probe(format_name=container.format.name, streams=[])
        for s in container.streams:
            result.streams.append(StreamProbe(index=s.index, type=s.type, codec=s.codec_context.name if s.codec_context else "",
                                              time_base=s.time_base, start_time=s.start_time,
                                              duration=s.duration))
        video = container.streams.video[0] if container.streams.video else None
        if video is not None:
            ctx = video.codec_context
            result.width, result.height, result.pix_fmt = ctx.width, ctx.height, ctx.pix_fmt
            result.color = {k: int(getattr(ctx, k)) for k in COLOR_KEYS}
            result.video_time_base = video.time_base
        for packet in container.demux():
            info = result.streams[packet.stream.index]
            if packet.size:
                info.packet_pts.append(packet.pts)
                info.packet_sizes.append(packet.size)
                info.packet_durations.append(packet.duration)
                info.packet_bytes.append(bytes(packet))
            if packet.stream.type != "video":
                continue
            for frame in packet.decode():
                if not result.frame_pts:
                    result.frame_color = {k: int(getattr(frame, k)) for k in COLOR_KEYS}
                    result.rotation = round(frame.rotation) % 360  # -90 and 270 are the same turn
                result.frame_pts.append(frame.pts)
                result.frame_formats.append(frame.format.name)
                result.frame_sizes.append((frame.width, frame.height))
                if keep_luma:
                    result.luma.append(plane_to_array(frame, 0))
    return result


def jpeg_bytes_quality(data: bytes) -> int | None:
    """Quality of an in-memory JPEG (an MJPEG packet), from its tables."""
    from streamfix.core.jpeg import quality_from_tables

    with Image.open(io.BytesIO(data)) as im:
        return quality_from_tables(getattr(im, "quantization", None))
