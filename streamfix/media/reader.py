"""Read a video (or a still image) into decoded frames plus the packets to copy.

Rules this module keeps, and why:
- Demux once, in file order, and hand out both decoded video frames and the raw
  packets of audio/subtitle/data streams (`items()`), so the writer can remux those
  untouched and they stay in sync: nothing is re-encoded except the video.
- Every video packet is decoded, including the demuxer's final empty packet: that
  one drains the decoder's reordering buffer (B-frames, frame threads). Packets are
  never skipped for a missing dts; only copied packets of size 0 (flush markers) are.
- The QP export option and frame threading are set before the first decode, because
  the decoder reads its options when it opens.
- The first frame is decoded while opening, so `video` describes what the decoder
  really outputs (size, pixel format, colour tags, rotation), and an input with no
  decodable frame fails before any output file exists.
- A frame without a timestamp (raw .h264 streams have none) gets one, one frame
  period after the previous frame, and a frame whose timestamp does not advance is
  moved one tick later, because the writer needs increasing pts for every frame.
- Each coded packet's size (and an MJPEG packet's JPEG quality) travels to its frame
  through FFmpeg's opaque copy, which survives B-frame reordering.
- Still images never go through FFmpeg: see stills.py.
- Every failure a user can cause is an InputError with one line that says what to do.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ..errors import InputError
from ..jpeg import quality_from_tables
from . import stills
from .qp import EXPORT_QP_OPTIONS, frame_qp_map

# Seconds to wait for a network source to connect / to send data before giving up.
NETWORK_TIMEOUT_S = 15.0
COPIED_STREAM_TYPES = ("audio", "subtitle", "data")


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The facts about the input video that the writer mirrors in the output."""

    width: int
    height: int
    pix_fmt: str
    codec_name: str
    bit_depth: int
    time_base: Fraction
    average_rate: Fraction | None
    start_time: int | None          # in time_base units, None if the container has none
    color_range: int                # AVColorRange: 0 unspecified, 1 limited (tv), 2 full (pc)
    color_primaries: int            # AVColorPrimaries (1 = BT.709, 2 = unspecified, ...)
    color_trc: int                  # AVColorTransferCharacteristic
    colorspace: int                 # AVColorSpace, the YUV matrix
    rotation: int                   # display rotation, counter-clockwise degrees: 0/90/180/270
    frame_count: int | None         # an estimate, for progress bars only
    duration_s: float | None
    is_still: bool
    sample_aspect_ratio: Fraction | None = None
    # A still's EXIF/ICC blobs, written back to a still output (orientation, profile).
    image_metadata: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    index: int                      # 0-based decode-output index
    frame: av.VideoFrame            # with pts/time_base of the source
    qp_map: np.ndarray | None       # H.264 per-macroblock QP
    packet_bytes: int | None        # size of the coded packet this frame came from
    jpeg_quality: int | None        # JPEG stills and MJPEG frames: quality from the tables


def _is_url(source: str) -> bool:
    return "://" in source


def _check_local_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a video or image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied); check the file's permissions")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); it holds no frames")


def _snap_rotation(degrees: float) -> int:
    """Display matrices may say -90 or 270.0000001: map to 0/90/180/270."""
    return int(round(degrees / 90.0)) % 4 * 90


class MediaReader:
    """Open `source` (a path or URL); `video` describes it, `items()` streams it.

    Use as a context manager: the container is closed on exit, also on error.
    `items()` can be iterated once. Packets and `copy_streams` belong to the open
    container: hand them to the writer before the reader is closed.
    """

    def __init__(self, source: str | Path, *, input_format: str | None = None,
                 options: dict[str, str] | None = None) -> None:
        self.source = str(source)
        self.copy_streams: list[av.stream.Stream] = []
        self._container: av.container.InputContainer | None = None
        self._pending: list[DecodedFrame | av.Packet] = []
        if not _is_url(self.source):
            _check_local_file(Path(self.source))
        if input_format is None and not _is_url(self.source) and stills.sniff_still(self.source):
            self._still = stills.read_still(self.source)
            self._items = self._still_items()
        else:
            self._open_container(input_format, options)
            self._items = self._container_items()
        try:
            self.video = self._peek_first_frame()
        except BaseException:
            self.close()  # no `with` has taken over yet: close the container here
            raise

    # --- opening ---------------------------------------------------------------

    def _open_container(self, input_format: str | None, options: dict[str, str] | None) -> None:
        try:
            self._container = av.open(self.source, format=input_format, options=options or {},
                                      timeout=(NETWORK_TIMEOUT_S, NETWORK_TIMEOUT_S))
        except av.error.FFmpegError as exc:
            if _is_url(self.source):
                raise InputError(f"{self.source}: cannot open the stream ({exc.strerror}); "
                                 f"check the address and that the server is up") from None
            raise InputError(f"{self.source}: cannot be read as a video ({exc.strerror}); it is "
                             f"not a media file, or it is truncated or corrupt") from None
        container = self._container
        if not container.streams.video:
            kinds = ", ".join(f"{s.type} ({s.codec_context.name if s.codec_context else 'unknown codec'})"
                              for s in container.streams) or "nothing"
            self.close()
            hint = "; if it should hold video, the file is corrupt" if "unknown codec" in kinds else ""
            raise InputError(f"{self.source}: has no video stream (it holds {kinds}); "
                             f"streamfix restores video and still images only{hint}")
        self._stream = container.streams.video[0]
        ctx = self._stream.codec_context
        ctx.thread_type = "AUTO"
        ctx.options = {**ctx.options, **EXPORT_QP_OPTIONS}
        # Lets each packet's size/quality ride along to the frame it becomes.
        ctx.copy_opaque = True
        self._is_mjpeg = ctx.name == "mjpeg"
        self.copy_streams = [s for s in container.streams
                             if s.type in COPIED_STREAM_TYPES and s.codec_context is not None]

    def _peek_first_frame(self) -> VideoInfo:
        """Pull items until the first frame so `video` reflects real decoded output."""
        for item in self._items:
            self._pending.append(item)
            if isinstance(item, DecodedFrame):
                return self._describe(item.frame)
        raise InputError(f"{self.source}: contains no decodable video frame (zero frames); "
                         f"the file is empty, cut before its first frame, or corrupt")

    def _describe(self, frame: av.VideoFrame) -> VideoInfo:
        if self._container is None:  # a still image
            return VideoInfo(width=frame.width, height=frame.height, pix_fmt=frame.format.name,
                             codec_name=self._still.format.lower(), bit_depth=_bits(frame.format),
                             time_base=Fraction(1, 1), average_rate=None, start_time=0,
                             color_range=int(frame.color_range), color_primaries=int(frame.color_primaries),
                             color_trc=int(frame.color_trc), colorspace=int(frame.colorspace),
                             rotation=self._still.rotation, frame_count=1, duration_s=None,
                             is_still=True, image_metadata=self._still.metadata)
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration_s = self._container.duration / av.time_base
        frame_count = stream.frames or None
        if frame_count is None and duration_s and rate:
            frame_count = max(1, round(duration_s * float(rate)))
        return VideoInfo(
            width=frame.width, height=frame.height, pix_fmt=frame.format.name,
            codec_name=stream.codec_context.name, bit_depth=_bits(frame.format),
            time_base=stream.time_base, average_rate=Fraction(rate) if rate else None,
            start_time=stream.start_time,
            color_range=int(frame.color_range), color_primaries=int(frame.color_primaries),
            color_trc=int(frame.color_trc), colorspace=int(frame.colorspace),
            rotation=_snap_rotation(frame.rotation), frame_count=frame_count, duration_s=duration_s,
            is_still=False, sample_aspect_ratio=stream.sample_aspect_ratio,
        )

    # --- iteration -------------------------------------------------------------

    def items(self) -> Iterator[DecodedFrame | av.Packet]:
        """Decoded video frames and copied-stream packets, in demux order."""
        while self._pending:
            yield self._pending.pop(0)
        yield from self._items

    def _still_items(self) -> Iterator[DecodedFrame]:
        yield DecodedFrame(index=0, frame=self._still.frame, qp_map=None, packet_bytes=None,
                           jpeg_quality=self._still.jpeg_quality)

    def _container_items(self) -> Iterator[DecodedFrame | av.Packet]:
        container, stream = self._container, self._stream
        wanted = [stream, *self.copy_streams]
        self._index = 0
        self._timing = _Timestamps(stream)
        try:
            for packet in container.demux(wanted):
                if packet.stream.index != stream.index:
                    if packet.size:
                        yield packet
                    continue
                if packet.size:
                    packet.opaque = (packet.size, self._mjpeg_quality(packet))
                yield from self._decoded(stream.decode(packet))
        except av.error.FFmpegError as exc:
            # Frames the decoder already holds (frame threads, B-frame delay) decoded
            # fine: hand them out before reporting where reading stopped.
            try:
                yield from self._decoded(stream.decode(None))
            except av.error.FFmpegError:
                pass
            raise InputError(f"{self.source}: reading failed after {self._index} frames ({exc.strerror}); "
                             f"the file is truncated or corrupt from there on") from None

    def _decoded(self, frames: list[av.VideoFrame]) -> Iterator[DecodedFrame]:
        for frame in frames:
            self._timing.fill(frame)
            self._check_same_shape(frame, self._index)
            size, quality = frame.opaque if frame.opaque is not None else (None, None)
            yield DecodedFrame(index=self._index, frame=frame, qp_map=frame_qp_map(frame),
                               packet_bytes=size, jpeg_quality=quality)
            self._index += 1

    def _mjpeg_quality(self, packet: av.Packet) -> int | None:
        if not self._is_mjpeg:
            return None
        try:
            with Image.open(io.BytesIO(bytes(packet))) as image:
                return quality_from_tables(getattr(image, "quantization", None))
        except OSError:  # a damaged JPEG: the strength is then unknown, not fatal
            return None

    def _check_same_shape(self, frame: av.VideoFrame, index: int) -> None:
        """One size and pixel format per file: the writer's encoder is opened once."""
        if index == 0:
            return
        info = self.video
        if (frame.width, frame.height) != (info.width, info.height):
            raise InputError(
                f"{self.source}: the video changes size at frame {index}, from {info.size} to "
                f"{frame.width}x{frame.height}; split the file at that frame and restore each part")
        if frame.format.name != info.pix_fmt:
            raise InputError(
                f"{self.source}: the pixel format changes at frame {index}, from {info.pix_fmt} to "
                f"{frame.format.name}; split the file at that frame and restore each part")

    # --- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Close the container. Its streams and packets die with it (touching them
        afterwards crashes inside FFmpeg), so copy_streams is emptied too."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self.copy_streams = []

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Timestamps:
    """Every frame leaves with a pts later than the previous frame's.

    A frame without one (raw .h264 has none) gets its dts, or the previous pts plus
    one frame period. A frame whose pts does not advance (damaged or badly muxed
    files) is moved one tick after the previous frame: muxers refuse equal or falling
    timestamps, and dropping the frame would lose it.
    """

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.time_base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.step = max(1, round(1 / (Fraction(rate) * self.time_base)))
        self.last: int | None = None
        self.first = stream.start_time or 0

    def fill(self, frame: av.VideoFrame) -> None:
        if frame.time_base is None:
            frame.time_base = self.time_base
        if frame.pts is None:
            if frame.dts is not None and (self.last is None or frame.dts > self.last):
                frame.pts = frame.dts
            else:
                frame.pts = self.first if self.last is None else self.last + self.step
        elif self.last is not None and frame.pts <= self.last:
            frame.pts = self.last + 1
        self.last = frame.pts


def _bits(pix_fmt: av.VideoFormat) -> int:
    return max(c.bits for c in pix_fmt.components)
