"""Read a video into decoded frames plus the packets to copy.

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
- Timestamps are made usable for any writer in one place (timestamps.py): a frame
  without one gets one, a frame whose timestamp does not advance is moved one tick
  later, and a reconnected source continues where the last one stopped.
- Each coded packet's size (and an MJPEG packet's JPEG quality) travels to its frame
  through FFmpeg's opaque copy, which survives B-frame reordering.
- Damage is read past, as FFmpeg does: a packet the decoder refuses is skipped, a
  demuxer error in a file is read past (up to READ_ERRORS_IN_A_ROW in a row), and
  what that cost is counted in `report` (input_report.py) for the warnings and
  `--stats`. Reading stops only when nothing more can be read.
- Every failure a user can cause is an InputError with one line that says what to do.
- Live sources (pipes, network URLs, see endpoints.py) are read with a timeout, so a
  stalled sender cannot hang the run. When such a source stalls, breaks or sends
  garbage after some frames, reading ends as if the stream had ended (`end_reason`
  says why) so the output is finished with every frame received, or the source is
  opened again up to `reconnect` times.
- A file whose demuxer stops early without an error (a cut MKV, an overwritten
  cluster) ends like a whole one, and `end_reason` says how much of the video its
  header promised is missing (see completeness.py).
- Each frame carries the monotonic time it left the decoder (`arrival`), and whether a
  live reader had to wait for its data (`input_idle`): live mode's deadlines use both.

One method per job, so each can be changed on its own: `_connect` (open, pick
streams, set decoder options), `_demux` (packets in file order), `_decode_packet`
(one video packet to frames), `_frames_out` (timestamps, checks, side data per
frame), `_reopen` (reconnecting) and `_check_complete` (the end of a file).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import InputError
from streamfix.media import completeness
from streamfix.media.decoded import DecodedFrame, VideoInfo
from streamfix.media.frame_fields import colour_tags
from streamfix.media.input_report import InputReport
from streamfix.media.input_source import InputSource
from streamfix.media.input_streams import copied_streams, describe_streams, restored_video
from streamfix.media.packet_hints import PacketHinter, PacketHints
from streamfix.media.planes import bit_depth
from streamfix.media.qp import EXPORT_QP_OPTIONS, frame_qp_map
from streamfix.media.timestamps import Timestamps

# Seconds to wait for a network source to connect / to send data before giving up.
NETWORK_TIMEOUT_S = 15.0
# A live packet this slow to read was not in a buffer: the reader had caught up with the
# source (DecodedFrame.input_idle). 4x Python's thread switch interval: not a GIL wait.
INPUT_WAIT_S = 0.020
# A file's demuxer failing this often in a row, with no packet between, has nothing
# more to give; fewer failures are read past.
READ_ERRORS_IN_A_ROW = 8
# With no frame decoded from this many video packets, the video is not decodable
# (an endless live stream would otherwise be read forever while opening).
FIRST_FRAME_WITHIN_PACKETS = 1000
# Container tags that describe the old file and would be wrong in the new one.
STALE_CONTAINER_TAGS = frozenset({"encoder", "duration", "creation_time", "major_brand", "minor_version",
                                  "compatible_brands"})


def _snap_rotation(degrees: float) -> int:
    """Display matrices may say -90 or 270.0000001: map to 0/90/180/270."""
    return int(round(degrees / 90.0)) % 4 * 90


class VideoReader:
    """Open `source`; `video` describes it, `items()` streams it.

    `source` is a path, `-` (stdin), `pipe:N`, a URL, a binary file-like object, or an
    open PyAV input container (left open: its owner closes it). `input_format` forces
    the demuxer (e.g. "mpegts" for a pipe), `options` go to FFmpeg's protocol and
    demuxer (e.g. {"listen": "1"}), `timeout_s` bounds every wait for data on a live
    source, and `reconnect` is how often a live URL is opened again after it broke.
    A local file should have passed `check_input_file` (open_input does that).

    Use as a context manager: the container is closed on exit, also on error.
    `items()` can be iterated once. Packets and `copy_streams` belong to the open
    container: hand them to the writer before the reader is closed.
    """

    def __init__(self, source: str | Path | object, *, input_format: str | None = None,
                 options: dict[str, str] | None = None, timeout_s: float = NETWORK_TIMEOUT_S,
                 reconnect: int = 0, log: Callable[[str], None] = print) -> None:
        self._input = InputSource(source, input_format=input_format, options=dict(options or {}),
                                  timeout_s=timeout_s)
        self.source = self._input.name
        self.live = self._input.live
        self.end_reason: str | None = None  # why the input ended early, if it did
        self.reconnects = 0
        self.copy_streams: list[av.stream.Stream] = []
        self._report = InputReport()
        self._ended = self._interlaced = False
        self._timing: Timestamps | None = None
        self._timeout_s, self._reconnect, self._log = timeout_s, reconnect, log
        self._container: av.container.InputContainer | None = None
        self._pending: list[DecodedFrame | av.Packet] = []
        self._index, self._input_idle = 0, False  # input_idle: see INPUT_WAIT_S
        # The last decoded frame's (pts, duration, time_base), for the completeness check.
        self._last_timing: tuple | None = None
        try:
            self._connect()
            self._items = self._read()
            self.video = self._peek_first_frame()
        except BaseException:
            self.close()  # no `with` has taken over yet: close the container here
            raise

    # --- opening ---------------------------------------------------------------

    def _connect(self) -> None:
        """Open the container, pick its video and copied streams, set the decoder up."""
        container = self._container = self._input.open()
        stream = restored_video(container)
        if stream is None:
            kinds = describe_streams(container)
            self._close_container()
            if "video #" in kinds and "unknown codec" in kinds:
                raise InputError(f"{self.source}: its video ({kinds}) cannot be decoded: FFmpeg knows no codec "
                                 f"for it; the file is corrupt or uses a codec this build lacks")
            hint = "; if it should hold video, the file is corrupt" if "unknown codec" in kinds else ""
            raise InputError(f"{self.source}: has no video stream (it holds {kinds}); "
                             f"streamfix restores video and still images only{hint}")
        self._stream = stream
        ctx = stream.codec_context
        # H.264 frame threads race on the exported QP map (FFmpeg 8.1 sometimes gives a
        # frame another's, tests/test_reader_qp_threads.py): one file would restore
        # differently from run to run, and a piece differently from the whole.
        ctx.thread_type = "SLICE" if ctx.name == "h264" else "AUTO"
        ctx.options = {**ctx.options, **EXPORT_QP_OPTIONS}
        ctx.copy_opaque = True  # each packet's hints ride along to the frame it becomes
        self._hinter = PacketHinter(stream)
        self.copy_streams, notes = copied_streams(container, stream, self.source)
        if self._timing is None:  # the first connection; a reconnect says nothing new
            self._report.notes.extend(notes)
        self._demuxed = [s for s in self.copy_streams if s.type != "attachment"]

    def _peek_first_frame(self) -> VideoInfo:
        """Pull items until the first frame so `video` reflects real decoded output."""
        for item in self._items:
            self._pending.append(item)
            if isinstance(item, DecodedFrame):
                return self._describe(item.frame)
        raise InputError(f"{self.source}: contains no decodable video frame (zero frames); "
                         f"the file is empty, cut before its first frame, or corrupt")

    def _describe(self, frame: av.VideoFrame) -> VideoInfo:
        stream, container = self._stream, self._container
        rate = stream.average_rate or stream.guessed_rate
        duration_s = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        frame_count = stream.frames or None
        if frame_count is None and duration_s and rate:
            frame_count = max(1, round(duration_s * float(rate)))
        self._interlaced = bool(frame.interlaced_frame)
        if self._interlaced:
            self._report.notes.append(
                f"streamfix: warning: {self.source}: the video is interlaced; it is restored and encoded as "
                f"progressive frames (the fields stay woven, the interlaced flag is not carried): deinterlace "
                f"it first (e.g. ffmpeg -vf bwdif) if it is meant for progressive screens")
        tags = tuple((k, v) for k, v in container.metadata.items() if k.lower() not in STALE_CONTAINER_TAGS)
        return VideoInfo(
            width=frame.width, height=frame.height, pix_fmt=frame.format.name,
            codec_name=stream.codec_context.name, bit_depth=bit_depth(frame),
            time_base=stream.time_base, average_rate=Fraction(rate) if rate else None,
            start_time=stream.start_time, **colour_tags(frame),
            rotation=_snap_rotation(frame.rotation), frame_count=frame_count, duration_s=duration_s,
            is_still=False, sample_aspect_ratio=stream.sample_aspect_ratio,
            container_metadata=tags, chapters=tuple(container.chapters()),
        )

    @property
    def report(self) -> InputReport:
        """What was done about damage and timestamps so far (input_report.py)."""
        report = self._report
        if self._timing is not None:
            report.timestamp_jumps = list(self._timing.jumps)
            report.timestamps_fixed = self._timing.moved
        if not self._ended:
            report.lost_frames = report.failed_packets
        return report

    @property
    def notes(self) -> list[str]:
        """The decisions to tell the user before the run starts (one line each)."""
        return list(self._report.notes)

    # --- iteration -------------------------------------------------------------

    def items(self) -> Iterator[DecodedFrame | av.Packet]:
        """Decoded video frames and copied-stream packets, in demux order."""
        while self._pending:
            yield self._pending.pop(0)
        yield from self._items

    def _read(self) -> Iterator[DecodedFrame | av.Packet]:
        discontinuous = bool(self._container.format.flags & av.format.Flags.ts_discont.value)
        self._timing = Timestamps(self._stream, discontinuous=discontinuous)
        yield from self._read_connections()
        # Only an input read to its end can say how many frames damage cost: one left
        # early (Ctrl-C) still has frames in the decoder's delay buffer.
        self._ended = True
        self._report.close_count(self._stream.codec_context.name, self._index, interlaced=self._interlaced)

    def _read_connections(self) -> Iterator[DecodedFrame | av.Packet]:
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
                # Nothing more can be read: what was decoded is good, and the user
                # hears where the file stopped giving data.
                self.end_reason = (f"{self.source}: reading stopped after {self._index} frames ({problem}); "
                                   f"the rest of the file is unreadable")
                return
            # A live source that stalls or breaks has still delivered good frames:
            # end here so they are written, and say why the stream ended.
            self.end_reason = f"{self.source} stopped sending after {self._index} frames ({problem})"
            return

    def _demux(self) -> Iterator[DecodedFrame | av.Packet]:
        """One connection's items; returns None at its end, or what went wrong."""
        container, stream = self._container, self._stream
        in_a_row = 0
        while True:
            try:
                packets = container.demux([stream, *self._demuxed])
                while True:
                    asked = time.monotonic()
                    packet = next(packets, None)
                    if packet is None:
                        break
                    self._input_idle = self.live and time.monotonic() - asked >= INPUT_WAIT_S
                    in_a_row = 0
                    self._timing.shift_packet(packet)
                    if packet.stream.index != stream.index:
                        if packet.size:
                            yield packet
                        continue
                    yield from self._decode_packet(packet)
                return None
            except av.error.FFmpegError as exc:
                in_a_row += 1
                if self.live or isinstance(exc, av.error.ExitError) or in_a_row >= READ_ERRORS_IN_A_ROW:
                    yield from self._drain()
                    if isinstance(exc, av.error.ExitError):
                        return f"no data for {self._timeout_s:g} s"
                    return exc.strerror or type(exc).__name__
                self._report.read_errors += 1

    def _drain(self) -> Iterator[DecodedFrame]:
        """Frames the decoder already holds (frame threads, B-frame delay) decoded
        fine: they come out before reading stops."""
        try:
            frames = self._stream.decode(None)
        except av.error.FFmpegError:
            return
        yield from self._frames_out(frames)

    def _decode_packet(self, packet: av.Packet) -> Iterator[DecodedFrame]:
        """The frames one video packet completes (the final empty packet drains).
        A packet the decoder refuses is skipped and counted: decoding goes on."""
        report = self._report
        if packet.size:
            report.video_packets += not packet.is_discard
            report.concealed += packet.is_corrupt
            packet.opaque = self._hinter.of(packet)
        try:
            frames = self._stream.decode(packet)
        except av.error.DecoderNotFoundError:
            raise InputError(f"{self.source}: this FFmpeg build has no decoder for its video codec "
                             f"({self._stream.codec_context.name}); convert it with another tool first") from None
        except av.error.FFmpegError:
            report.failed_packets += bool(packet.size)
            frames = []
        if self._index == 0 and report.video_packets > FIRST_FRAME_WITHIN_PACKETS and not frames:
            raise InputError(f"{self.source}: none of the first {report.video_packets} video packets could be "
                             f"decoded; the video is corrupt")
        yield from self._frames_out(frames)

    def _frames_out(self, frames: list[av.VideoFrame]) -> Iterator[DecodedFrame]:
        for frame in frames:
            self._timing.fill(frame)
            self._last_timing = (frame.pts, frame.duration, frame.time_base)
            self._check_same_shape(frame, self._index)
            self._report.concealed += frame.is_corrupt
            hints = frame.opaque if isinstance(frame.opaque, PacketHints) else PacketHints(None)
            yield DecodedFrame(index=self._index, frame=frame, qp_map=frame_qp_map(frame),
                               packet_bytes=hints.size, jpeg_quality=hints.jpeg_quality,
                               quantizer=hints.quantizer, arrival=time.monotonic(), input_idle=self._input_idle)
            self._index += 1

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

    # --- the end of the input ----------------------------------------------------

    def _check_complete(self) -> None:
        period = self._timing.step * self._timing.time_base
        end_s = completeness.frame_end_s(*self._last_timing, period) if self._last_timing is not None else None
        if end_s is not None:  # compared on the input's own clock, before any jump was closed
            end_s -= float(self._timing.shift_s)
        # Packets lost to damage were counted and are reported as such, not as a cut file.
        frames = max(self._index, self._report.video_packets)
        missing = completeness.shortfall(self._stream, frames=frames, end_s=end_s, period_s=float(period))
        if missing is not None:
            self.end_reason = f"{self.source}: {missing}; it is truncated or corrupt from there on"

    def _may_reconnect(self) -> bool:
        return self.live and self._input.is_url and self.reconnects < self._reconnect

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
                self._connect()
            except InputError as exc:
                problem = f"reconnecting failed: {str(exc).split(': ', 1)[-1]}"
                continue
            self._timing.new_segment(self._stream)
            return None
        return problem

    # --- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Close the container (unless the caller opened it) and give a pipe back its
        blocking mode."""
        self._close_container()
        self._input.restore_pipe()

    def _close_container(self) -> None:
        """Its streams and packets die with the container (touching them afterwards
        crashes inside FFmpeg), so copy_streams is emptied too."""
        if self._container is not None:
            self._input.close(self._container)
            self._container = None
        self.copy_streams = []

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
