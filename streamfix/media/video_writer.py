"""Encode restored frames (and remux the copied audio/subtitle packets) into a video.

Rules this module keeps, and why:
- Only the video is encoded. Audio, subtitle and data packets from the reader are
  remuxed as they are, with their own timestamps, so they cannot drift. A stream the
  output container cannot hold is refused up front (or dropped with a logged line if
  the config says so), never lost silently.
- Every frame keeps the pts of its source frame, in the source's time base: that is
  what keeps variable frame rate, B-frame delays and late start times intact.
- The output mirrors the input: size, pixel format and bit depth (unless the config
  asks for another), colour range/primaries/transfer/matrix on the stream and the
  frames, display rotation, sample aspect ratio. Colour tags come from VideoInfo,
  not from the frames, because restored frames are new frames with planes only.
- The default encode is x264 CRF 16 preset medium: the output must not add back the
  artifacts just removed. Codecs without CRF (ffv1, mpeg4, ...) get no CRF option
  (encoding.py holds the config and the pixel-format choice).
- The encoder is opened and the header written when the writer opens, so a bad
  codec, option or size fails before any frame is decoded or restored.
- A stream output (pipe, URL, file-like object) is written in the container format
  given (URLs default to their protocol's usual one, see containers.py), and packets
  are flushed as they are muxed so a receiver downstream is not kept waiting on a
  half-full buffer.
- A TCP output in listen mode waits for its client in FFmpeg, where no signal
  handler runs: it waits in LISTEN_SLICE_MS slices (FFmpeg's listen_timeout), so
  Ctrl-C and SIGTERM end the wait within a second. A client that connects in the
  few milliseconds between two slices is refused once and must connect again.
- Encoder options are checked before the encoder opens (unknown names are warned
  about, impossible values refused), and when the output still cannot start the
  message says which part failed (encoder_check.py).
- Every packet reaches the muxer with an increasing dts in its output stream's
  time base (timestamps.OutputTimestamps); the container's tags, chapters and
  attachments are carried (container_extras.py).
The target, its partial name, finish and abort are frame_writer.py's.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.core.threads import raise_if_stop_requested
from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.container_extras import carry_extras, extras_notes
from streamfix.media.copied_streams import add_copied_stream
from streamfix.media.containers import output_format_for
from streamfix.media.decoded import VideoInfo
from streamfix.media.encoder_check import check_options, explain_start_failure
from streamfix.media.encoding import (DEFAULT_PRESET, EncodeConfig, choose_pix_fmt, codec_for, encoder_options,
                                      parse_bitrate)
from streamfix.media.frame_fields import COLOUR_FIELDS, colour_tags, copy_timing
from streamfix.media.frame_writer import FrameWriter
from streamfix.media.planes import reformat
from streamfix.media.timestamps import OutputTimestamps

# How long one wait for a listen-mode client lasts before the next (milliseconds).
LISTEN_SLICE_MS = 500


class VideoWriter(FrameWriter):
    """Encode frames and remux packets into `target`; see the module docstring and
    FrameWriter. `options` go to the protocol and muxer (e.g. {"listen": "1"})."""

    def __init__(self, target: str | Path | object, video: VideoInfo, copy_streams: list,
                 config: EncodeConfig | None = None, *, container_format: str | None = None,
                 options: dict[str, str] | None = None, source: str | Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        super().__init__(target, video, container_format=container_format, source=source, log=log)
        self.config = config or EncodeConfig()
        self._last_pts: Fraction | None = None
        self._container: av.container.OutputContainer | None = None
        self._copy_map: dict[int, av.stream.Stream] = {}
        self._options = dict(options or {})
        self.timestamps = OutputTimestamps()
        self.dropped_packets = 0  # damaged copied packets the muxer could not store
        try:
            format_name = output_format_for(self.target, container_format)
            self._choose_encoder(format_name)
            for line in extras_notes(format_name, video, copy_streams):
                log(line)
        except BaseException:
            self._discard()
            raise
        self._open(format_name, copy_streams)

    def _choose_encoder(self, format_name: str) -> None:
        """The encoder, its options and pixel format, decided (and said) once."""
        cfg, info = self.config, self.video
        self.codec = codec_for(cfg, format_name)
        if self.codec != cfg.codec:
            self.log(f"streamfix: {format_name} cannot hold {cfg.codec} video: encoding with {self.codec}")
        try:
            if av.Codec(self.codec, "w").type != "video":
                raise ValueError(f"{self.codec} is not a video encoder")
        except (ValueError, av.error.FFmpegError) as exc:
            raise OutputError(f"unknown or unusable encoder {self.codec!r} ({exc}); try libx264 or ffv1") from None
        self._encoder_options = encoder_options(cfg, self.codec)
        for line in check_options(self.codec, self._encoder_options):
            self.log(line)
        if cfg.preset != DEFAULT_PRESET and "preset" not in self._encoder_options:
            self.log(f"streamfix: warning: the encoder {self.codec} has no presets: preset {cfg.preset!r} ignored")
        wanted = cfg.pix_fmt or info.pix_fmt
        self.pix_fmt = choose_pix_fmt(self.codec, wanted, info.width, info.height)
        if self.pix_fmt != wanted:
            self.log(f"{self.codec} cannot encode {wanted} at {info.size}: writing {self.pix_fmt} instead")

    # --- opening ---------------------------------------------------------------

    def _open(self, format_name: str, copy_streams: list) -> None:
        target = self._write_path if self.is_file else self.target
        if target == endpoints.PIPE:
            target = "pipe:1"
        target, options = endpoints.split_output_options(target, self._options)
        if not self.is_file:
            # Live receivers want each packet now, not when a 32 KiB buffer fills.
            options.setdefault("flush_packets", "1")
        waits = endpoints.listens_for_client(target)
        if waits:
            target = endpoints.with_query(target, listen_timeout=str(LISTEN_SLICE_MS))
        while True:
            try:
                self._open_once(target, format_name, options, copy_streams)
                return
            except TimeoutError:
                if not waits:
                    raise
                # No client yet: wait again, unless a signal asked to stop meanwhile.
                raise_if_stop_requested()

    def _open_once(self, target: str | object, format_name: str, options: dict[str, str],
                   copy_streams: list) -> None:
        try:
            self._container = av.open(target, "w", format=format_name, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            self._discard()
            raise OutputError(f"{self.name}: cannot be created ({exc}); check the path and free space") from None
        try:
            self._stream = self._add_video_stream()
            self._add_copy_streams(copy_streams)
            carry_extras(self._container, self.video, copy_streams)
            # Opens the encoder and writes the header now, so a bad codec/option/size
            # fails here, before any frame is decoded or restored.
            self._container.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            self._discard(keep_partial=isinstance(exc, TimeoutError))
            if isinstance(exc, TimeoutError):
                raise
            raise_if_stop_requested()  # a signal during the wait ends the run as a signal, not as a failure
            if not self.is_file and isinstance(exc, OSError) and exc.errno not in (None, errno.EINVAL):
                # The header is the first write: a stream output connects (or, in
                # listen mode, waits for its client) here.
                raise OutputError(f"{self.name}: cannot open the stream output ({exc.strerror}); check the "
                                  f"address and that the receiver is up (listen mode: that a client "
                                  f"connected in time)") from None
            why = explain_start_failure(exc, codec=self.codec, pix_fmt=self.pix_fmt, width=self.video.width,
                                        height=self.video.height, time_base=self.video.time_base,
                                        options=self._encoder_options, format_name=format_name,
                                        stream_output=not self.is_file)
            raise OutputError(f"{self.target if self.is_file else self.name}: {why}") from None
        except BaseException:
            self._discard()
            raise

    def _add_video_stream(self) -> av.video.stream.VideoStream:
        cfg, info = self.config, self.video
        stream = self._container.add_stream(self.codec, rate=info.average_rate or 25, options=self._encoder_options)
        ctx = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self.pix_fmt
        # The encoder works in the source's time base, so every pts passes unchanged.
        ctx.time_base = info.time_base
        stream.time_base = info.time_base
        if cfg.bitrate is not None:
            ctx.bit_rate = parse_bitrate(cfg.bitrate)
        elif "crf" in self._encoder_options:
            ctx.bit_rate = 0  # libvpx reads crf as a cap on its default 200 kb/s unless the rate is 0
        for key, value in self._frame_colour().items():
            setattr(ctx, key, value)
        if info.sample_aspect_ratio:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def _frame_colour(self) -> dict[str, int]:
        """Colour tags to write; a yuvj format is full range whatever the input said."""
        colour = colour_tags(self.video)
        if self.pix_fmt.startswith("yuvj"):
            colour["color_range"] = 2
        return colour

    def _add_copy_streams(self, copy_streams: list) -> None:
        for source in copy_streams:
            if source.type == "attachment":  # no packets: container_extras.py writes them
                continue
            stream = add_copied_stream(self._container, source, target=self.target,
                                       drop_uncopyable=self.config.drop_uncopyable, log=self.log)
            if stream is not None:
                self._copy_map[source.index] = stream

    # --- writing ---------------------------------------------------------------

    def _store(self, frame: av.VideoFrame) -> None:
        self._check_increasing(frame)
        frame = self._prepare(frame)
        try:
            self._mux(self._stream.encode(frame))
        except av.error.FFmpegError as exc:
            raise self._write_failed(f"encoding frame {self.frames_written}", exc) from None

    def _check_increasing(self, frame: av.VideoFrame) -> None:
        """Equal or falling pts would make the muxer fail later with a cryptic error."""
        when = frame.pts * frame.time_base
        if self._last_pts is not None and when <= self._last_pts:
            raise ValueError(f"frame {self.frames_written} has pts {frame.pts} ({float(when):.6f} s), not after "
                             f"the previous frame's {float(self._last_pts):.6f} s; frames must come in display order")
        self._last_pts = when

    def _prepare(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Convert to the output pixel format if needed; set the colour tags."""
        colour = self._frame_colour()
        if frame.format.name != self.pix_fmt:
            matrix = stills.swscale_matrix(self.video.colorspace)
            frame = copy_timing(frame, reformat(frame, format=self.pix_fmt, src_colorspace=matrix,
                                                dst_colorspace=matrix,
                                                src_color_range=self.video.color_range or None,
                                                dst_color_range=colour["color_range"] or None))
        for key in COLOUR_FIELDS:
            setattr(frame, key, colour[key])
        # A decoded frame keeps its source's I/P/B type, which the encoder would obey;
        # the output's GOP structure is the encoder's own choice.
        frame.pict_type = av.video.frame.PictureType.NONE
        return frame

    def write_packet(self, packet: av.Packet) -> None:
        """Remux one packet of a copied stream, unchanged, with its own timestamps."""
        self._check_open()
        # stream_index, not packet.stream: the index stays valid even if the input
        # container has been closed meanwhile (its stream objects have not).
        stream = self._copy_map.get(packet.stream_index)
        if stream is None or not packet.size:  # a dropped stream, or a flush marker
            return
        packet.stream = stream
        try:
            self._mux([packet])
        except av.error.FFmpegError as exc:
            raise self._write_failed(f"copying {_a(stream.type)} {stream.type} packet at pts {packet.pts}",
                                     exc) from None

    # --- ending ----------------------------------------------------------------

    def _close(self, *, quiet: bool) -> None:
        """Flush the encoder and close the container."""
        container, self._container = self._container, None
        try:
            if self.frames_written:
                self._mux(self._stream.encode(None), container)
        except av.error.FFmpegError as exc:
            if not quiet:
                container.close()
                raise self._write_failed("flushing the encoder", exc) from None
        try:
            container.close()
        except av.error.FFmpegError as exc:
            if not quiet:
                raise self._write_failed("finishing the output", exc) from None

    def _mux(self, packets: list[av.Packet], container: av.container.OutputContainer | None = None) -> None:
        """Mux packets, each with an increasing dts in its stream (OutputTimestamps).

        A damaged copied packet (an AAC frame whose ADTS header a bit error broke) is
        refused by the muxer as invalid data, possibly later, when the interleaving
        buffer passes it on during another packet's call. Only that packet is lost
        (the muxer keeps the rest buffered), so it is counted and writing goes on, as
        FFmpeg does; a disk or connection error still ends the run."""
        container = container or self._container
        for packet in packets:
            self.timestamps.fit(packet, packet.stream)
            try:
                container.mux(packet)
            except av.error.InvalidDataError:
                self.dropped_packets += 1

    def _write_failed(self, what: str, exc: av.error.FFmpegError) -> OutputError:
        if self.is_file:
            return OutputError(f"{self.name}: {what} failed ({exc.strerror}); check free disk space")
        return OutputError(f"{self.name}: {what} failed ({exc.strerror}); the receiver closed the pipe "
                           f"or connection, or cannot be reached")

    def _discard(self, *, keep_partial: bool = False) -> None:
        """Undo a failed open: nothing useful was written. `keep_partial`: the open
        is tried again (listen mode), into the same partial file."""
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass
            self._container = None
        if not keep_partial:
            self._closed = True
            self._remove_partial()


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
