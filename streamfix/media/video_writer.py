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
The target, its partial name, finish and abort are frame_writer.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.containers import output_format_for
from streamfix.media.decoded import VideoInfo
from streamfix.media.encoding import EncodeConfig, choose_pix_fmt, encoder_options, parse_bitrate
from streamfix.media.frame_fields import COLOUR_FIELDS, colour_tags, copy_timing
from streamfix.media.frame_writer import FrameWriter
from streamfix.media.planes import reformat

# Muxers that accept any codec when asked (no codec table) but cannot really carry
# these: MPEG-TS would write text subtitles as an unlabelled private stream.
MUXER_REFUSES = {"mpegts": frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})}
# Mux stream tags that describe the old file and would be wrong in the new one.
STALE_TAG_PREFIXES = ("DURATION", "NUMBER_OF_", "_STATISTICS")


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
        self._open(output_format_for(self.target, container_format), copy_streams)

    # --- opening ---------------------------------------------------------------

    def _open(self, format_name: str, copy_streams: list) -> None:
        target = self.target
        if self.is_file:
            target = str(self.partial)
        elif target == endpoints.PIPE:
            target = "pipe:1"
        target, options = endpoints.split_output_options(target, self._options)
        if not self.is_file:
            # Live receivers want each packet now, not when a 32 KiB buffer fills.
            options.setdefault("flush_packets", "1")
        try:
            self._container = av.open(target, "w", format=format_name, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.name}: cannot be created ({exc}); check the path and free space") from None
        try:
            self._stream = self._add_video_stream()
            self._add_copy_streams(copy_streams)
            # Opens the encoder and writes the header now, so a bad codec/option/size
            # fails here, before any frame is decoded or restored.
            self._container.start_encoding()
        except (av.error.FFmpegError, ValueError) as exc:
            self._discard()
            if not self.is_file and isinstance(exc, OSError):
                # The header is the first write: a stream output connects (or, in
                # listen mode, waits for its client) here.
                raise OutputError(f"{self.name}: cannot open the stream output ({exc.strerror}); check the "
                                  f"address and that the receiver is up (listen mode: that a client "
                                  f"connected in time)") from None
            raise OutputError(f"{self.target}: the encoder {self.config.codec} cannot start with "
                              f"{self.pix_fmt} {self.video.size} ({exc}); try another codec or pixel format") from None
        except BaseException:
            self._discard()
            raise

    def _add_video_stream(self) -> av.video.stream.VideoStream:
        cfg, info = self.config, self.video
        try:
            if av.Codec(cfg.codec, "w").type != "video":
                raise ValueError(f"{cfg.codec} is not a video encoder")
        except (ValueError, av.error.FFmpegError) as exc:
            raise OutputError(f"unknown or unusable encoder {cfg.codec!r} ({exc}); try libx264 or ffv1") from None
        self.pix_fmt = choose_pix_fmt(cfg.codec, cfg.pix_fmt or info.pix_fmt, info.width, info.height)
        if self.pix_fmt != (cfg.pix_fmt or info.pix_fmt):
            self.log(f"{cfg.codec} cannot encode {cfg.pix_fmt or info.pix_fmt} at {info.size}: "
                     f"writing {self.pix_fmt} instead")
        stream = self._container.add_stream(cfg.codec, rate=info.average_rate or 25, options=encoder_options(cfg))
        ctx = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, self.pix_fmt
        # The encoder works in the source's time base, so every pts passes unchanged.
        ctx.time_base = info.time_base
        stream.time_base = info.time_base
        if cfg.bitrate is not None:
            ctx.bit_rate = parse_bitrate(cfg.bitrate)
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
            name = source.codec_context.name if source.codec_context is not None else source.type
            try:
                if name in MUXER_REFUSES.get(self._container.format.name, ()):
                    raise ValueError(name)
                stream = self._container.add_stream_from_template(source)
            except ValueError:
                message = (f"{source.type} stream #{source.index} ({name}) cannot be stored in "
                           f"{self._container.format.name} without re-encoding")
                if source.type == "data" or self.config.drop_uncopyable:
                    self.log(f"{message}: dropped")
                    continue
                raise OutputError(f"{self.target}: {message}; write the input's container type "
                                  f"(same suffix), or allow dropping such streams") from None
            for key, value in source.metadata.items():
                if not key.startswith(STALE_TAG_PREFIXES):
                    stream.metadata[key] = value
            stream.disposition = source.disposition
            self._copy_map[source.index] = stream

    # --- writing ---------------------------------------------------------------

    def _store(self, frame: av.VideoFrame) -> None:
        self._check_increasing(frame)
        frame = self._prepare(frame)
        try:
            self._container.mux(self._stream.encode(frame))
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
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise self._write_failed(f"copying a {stream.type} packet at pts {packet.pts}", exc) from None

    # --- ending ----------------------------------------------------------------

    def _close(self, *, quiet: bool) -> None:
        """Flush the encoder and close the container."""
        container, self._container = self._container, None
        try:
            if self.frames_written:
                container.mux(self._stream.encode(None))
        except av.error.FFmpegError as exc:
            if not quiet:
                container.close()
                raise self._write_failed("flushing the encoder", exc) from None
        try:
            container.close()
        except av.error.FFmpegError as exc:
            if not quiet:
                raise self._write_failed("finishing the output", exc) from None

    def _write_failed(self, what: str, exc: av.error.FFmpegError) -> OutputError:
        if self.is_file:
            return OutputError(f"{self.name}: {what} failed ({exc.strerror}); check free disk space")
        return OutputError(f"{self.name}: {what} failed ({exc.strerror}); the receiver closed the pipe "
                           f"or connection, or cannot be reached")

    def _discard(self) -> None:
        """Undo a failed open: nothing useful was written."""
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
            self._container = None
        self._closed = True
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)
