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
- Live sources (pipes, network URLs, see endpoints.py) are read with a timeout, so a
  stalled sender cannot hang the run. When such a source stalls, breaks or sends
  garbage after some frames, reading ends as if the stream had ended (`end_reason`
  says why) so the output is finished with every frame received, or the source is
  opened again up to `reconnect` times, with timestamps continued where they stopped.
- A file whose demuxer stops early without an error (a cut MKV, an overwritten
  cluster) ends like a whole one, and `end_reason` says how much of the video its
  header promised is missing (see completeness.py).
- Each frame carries the monotonic time it left the decoder (`arrival`): live mode
  computes its deadline from it.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from streamfix.core.errors import InputError
from streamfix.core.jpeg import quality_from_tables
from streamfix.media import completeness
from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.qp import EXPORT_QP_OPTIONS, frame_qp_map
from streamfix.media.timestamps import Timestamps

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
    arrival: float | None = None    # time.monotonic() when the decoder produced it


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
    """Open `source`; `video` describes it, `items()` streams it.

    `source` is a path, `-` (stdin), `pipe:N`, a URL, a binary file-like object, or an
    open PyAV input container (left open: its owner closes it). `input_format` forces
    the demuxer (e.g. "mpegts" for a pipe), `options` go to FFmpeg's protocol and
    demuxer (e.g. {"listen": "1"}), `timeout_s` bounds every wait for data on a live
    source, and `reconnect` is how often a live URL is opened again after it broke.

    Use as a context manager: the container is closed on exit, also on error.
    `items()` can be iterated once. Packets and `copy_streams` belong to the open
    container: hand them to the writer before the reader is closed.
    """

    def __init__(self, source: str | Path | object, *, input_format: str | None = None,
                 options: dict[str, str] | None = None, timeout_s: float = NETWORK_TIMEOUT_S,
                 reconnect: int = 0, log: Callable[[str], None] = print) -> None:
        self.source = source if isinstance(source, (str, Path)) else endpoints.describe(source)
        self.source = str(self.source)
        self.live = endpoints.is_live(source) if isinstance(source, str) else False
        self.end_reason: str | None = None  # why the input ended early, if it did
        self.reconnects = 0
        self.copy_streams: list[av.stream.Stream] = []
        self._input, self._format, self._options = source, input_format, dict(options or {})
        self._timeout_s, self._reconnect, self._log = timeout_s, reconnect, log
        self._container: av.container.InputContainer | None = None
        self._owns_container = not isinstance(source, av.container.InputContainer)
        self._stdin_blocking: bool | None = None
        self._pending: list[DecodedFrame | av.Packet] = []
        # The last decoded frame's (pts, duration, time_base), for the completeness check.
        self._last_timing: tuple | None = None
        is_file = isinstance(source, Path) or (isinstance(source, str) and endpoints.is_path(source))
        if is_file:
            _check_local_file(Path(self.source))
        if input_format is None and is_file and stills.sniff_still(self.source):
            self._still = stills.read_still(self.source)
            self._items = self._still_items()
        else:
            self._open_container()
            self._items = self._container_items()
        try:
            self.video = self._peek_first_frame()
        except BaseException:
            self.close()  # no `with` has taken over yet: close the container here
            raise

    # --- opening ---------------------------------------------------------------

    def _open_target(self) -> object:
        """What av.open reads: stdin becomes FFmpeg's pipe protocol on a non-blocking
        descriptor, so FFmpeg polls it and its read timeout works (a blocking read of
        a silent pipe would never return)."""
        source = self._input
        if source == endpoints.PIPE:
            if os.isatty(0):
                raise InputError("-: stdin is a terminal, not a stream; pipe one in, e.g. "
                                 "`ffmpeg -i in.mp4 -c copy -f mpegts - | streamfix run - out.mkv`")
            source = "pipe:0"
        if isinstance(source, str) and source.startswith("pipe:") and source[5:].isdigit():
            fd = int(source[5:])
            if self._stdin_blocking is None:
                self._stdin_blocking = os.get_blocking(fd)
                self._pipe_fd = fd
            os.set_blocking(fd, False)
        return str(source) if isinstance(source, Path) else source

    def _open_container(self) -> None:
        if isinstance(self._input, av.container.InputContainer):
            self._container = self._input
        else:
            options = dict(self._options)
            if endpoints.is_url(self._input):
                options = {**endpoints.timeout_options(self._input, self._timeout_s), **options}
            try:
                self._container = av.open(self._open_target(), format=self._format, options=options,
                                          timeout=(self._timeout_s, self._timeout_s))
            except av.error.FFmpegError as exc:
                self._restore_pipe()
                if self.live or endpoints.is_url(self._input):
                    raise InputError(f"{self.source}: cannot open the stream ({exc.strerror}); check the "
                                     f"address, that the sender is running, and --input-format") from None
                raise InputError(f"{self.source}: cannot be read as a video ({exc.strerror}); it is "
                                 f"not a media file, or it is truncated or corrupt") from None
        self._set_up_streams()

    def _set_up_streams(self) -> None:
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
        # H.264 frame threads race on the exported QP map (FFmpeg 8.1 sometimes gives a
        # frame another's): one file would restore differently from run to run.
        ctx.thread_type = "SLICE" if ctx.name == "h264" else "AUTO"
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
                           jpeg_quality=self._still.jpeg_quality, arrival=time.monotonic())

    def _container_items(self) -> Iterator[DecodedFrame | av.Packet]:
        self._index = 0
        self._timing = Timestamps(self._stream)
        while True:
            problem = yield from self._demux()
            if self._may_reconnect():
                problem = self._reopen(problem or "the stream ended")
                if problem is None:
                    continue
            if problem is None:
                if not self.live:
                    self._check_complete()
                return
            if not self.live:
                raise InputError(f"{self.source}: reading failed after {self._index} frames ({problem}); "
                                 f"the file is truncated or corrupt from there on")
            # A live source that stalls or breaks has still delivered good frames:
            # end here so they are written, and say why the stream ended.
            self.end_reason = f"{self.source} stopped sending after {self._index} frames ({problem})"
            return

    def _demux(self) -> Iterator[DecodedFrame | av.Packet]:
        """One connection's items; returns None at its end, or what went wrong."""
        container, stream = self._container, self._stream
        try:
            for packet in container.demux([stream, *self.copy_streams]):
                self._timing.shift_packet(packet)
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
            if isinstance(exc, av.error.ExitError):
                return f"no data for {self._timeout_s:g} s"
            return exc.strerror or type(exc).__name__
        return None

    def _check_complete(self) -> None:
        period = self._timing.step * self._timing.time_base
        end_s = completeness.frame_end_s(*self._last_timing, period) if self._last_timing is not None else None
        missing = completeness.shortfall(self._stream, frames=self._index, end_s=end_s, period_s=float(period))
        if missing is not None:
            self.end_reason = f"{self.source}: {missing}; it is truncated or corrupt from there on"

    def _may_reconnect(self) -> bool:
        return self.live and endpoints.is_url(self._input) and self.reconnects < self._reconnect

    def _reopen(self, problem: str) -> str | None:
        """Open the URL again, up to `reconnect` times in all, half a second apart and
        more each time; timestamps continue one frame after the last one. Returns
        None once reconnected, else what went wrong."""
        while self.reconnects < self._reconnect:
            self.reconnects += 1
            self._log(f"streamfix: {self.source}: {problem} after {self._index} frames; reconnecting "
                      f"({self.reconnects} of {self._reconnect})")
            self._close_container()
            time.sleep(min(0.5 * self.reconnects, 5.0))
            try:
                self._open_container()
            except InputError as exc:
                problem = f"reconnecting failed: {str(exc).split(': ', 1)[-1]}"
                continue
            self._timing.new_segment(self._stream)
            return None
        return problem

    def _decoded(self, frames: list[av.VideoFrame]) -> Iterator[DecodedFrame]:
        for frame in frames:
            self._timing.fill(frame)
            self._last_timing = (frame.pts, frame.duration, frame.time_base)
            self._check_same_shape(frame, self._index)
            size, quality = frame.opaque if frame.opaque is not None else (None, None)
            yield DecodedFrame(index=self._index, frame=frame, qp_map=frame_qp_map(frame),
                               packet_bytes=size, jpeg_quality=quality, arrival=time.monotonic())
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
        """Close the container (unless the caller opened it). Its streams and packets
        die with it (touching them afterwards crashes inside FFmpeg), so copy_streams
        is emptied too."""
        self._close_container()
        self.copy_streams = []
        self._restore_pipe()

    def _close_container(self) -> None:
        if self._container is not None:
            if self._owns_container:
                self._container.close()
            self._container = None

    def _restore_pipe(self) -> None:
        """Give a pipe descriptor back in the blocking mode it came in."""
        if self._stdin_blocking is not None:
            try:
                os.set_blocking(self._pipe_fd, self._stdin_blocking)
            except OSError:
                pass
            self._stdin_blocking = None

    def __enter__(self) -> MediaReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bits(pix_fmt: av.VideoFormat) -> int:
    return max(c.bits for c in pix_fmt.components)
