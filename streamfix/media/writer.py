"""Write restored frames (and the copied audio/subtitle packets) to a file.

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
- While writing, the file is `<stem>.partial<suffix>`; `finish()` renames it to the
  target, so a file under the target name is always complete. `abort()` closes what
  was written (still playable) and leaves it under the partial name.
- Unwritable targets fail before any decoding or inference starts (`check_writable`).
- A still-image target (.png, .jpg, ...) is written with PIL (see stills.py).
- A pipe (`-`, `pipe:N`), a URL or a file-like object has no name to rename: it is
  written directly, in the container format given (URLs default to their protocol's
  usual one, e.g. MPEG-TS for udp://), and packets are flushed as they are muxed so
  a receiver downstream is not kept waiting on a half-full buffer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.copied_streams import add_copied_stream
from streamfix.media.encoding import EncodeConfig, choose_pix_fmt, encoder_options, parse_bitrate
from streamfix.media.planes import reformat
from streamfix.media.reader import VideoInfo

# EncodeConfig and the helpers are part of this module's interface.
__all__ = ["EncodeConfig", "MediaWriter", "check_writable", "choose_pix_fmt", "container_format_for",
           "parse_bitrate", "partial_path"]

# Output suffix -> FFmpeg muxer. Anything else needs an explicit container_format.
CONTAINER_FORMATS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
    ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".avi": "avi", ".nut": "nut",
    ".flv": "flv",
}


def partial_path(target: str | Path) -> Path:
    """Where the output lives until it is complete: out.mp4 -> out.partial.mp4."""
    target = Path(target)
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def container_format_for(target: str | Path, container_format: str | None = None) -> str:
    if container_format is not None:
        try:
            av.format.ContainerFormat(container_format, "w")
        except (ValueError, av.error.FFmpegError):
            raise OutputError(f"unknown container format {container_format!r}; try mp4, matroska or mpegts") from None
        return container_format
    suffix = Path(target).suffix.lower()
    if suffix not in CONTAINER_FORMATS:
        known = " ".join(sorted(set(CONTAINER_FORMATS) | set(stills.IMAGE_SUFFIXES)))
        raise OutputError(f"{target}: cannot tell the output format from {suffix or 'no suffix'!r}; "
                          f"use one of {known}, or name the container format")
    return CONTAINER_FORMATS[suffix]


def check_writable(target: str | Path, source: str | Path | None = None, *,
                   container_format: str | None = None) -> Path:
    """Raise OutputError if `target` cannot be written; cheap, so call it early."""
    target = Path(target)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory; give an output file name, e.g. {target / 'restored.mp4'}")
    parent = target.parent
    if not parent.exists():
        raise OutputError(f"{target}: the directory {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputError(f"{target}: {parent} is not a directory; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: no permission to write in {parent}; choose another directory")
    if source is not None and "://" not in str(source):
        for candidate in (target, partial_path(target)):
            if candidate.exists() and Path(source).exists() and os.path.samefile(candidate, source):
                raise OutputError(f"{target}: is the input file itself; choose another output name")
    if not (container_format is None and stills.is_image_target(target)):
        container_format_for(target, container_format)
    return target


class MediaWriter:
    """Encode frames and remux packets into `target`; see the module docstring.

    As a context manager: leaving with an exception calls `abort()`, leaving normally
    calls `finish()` if the caller has not. Pass `source` (the input path) to have a
    target that is the input itself refused. `log` receives one line per decision
    the user should know about (a changed pixel format, a dropped stream).
    """

    def __init__(self, target: str | Path | object, video: VideoInfo, copy_streams: list,
                 config: EncodeConfig | None = None, *, container_format: str | None = None,
                 options: dict[str, str] | None = None, source: str | Path | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.is_file = endpoints.is_path(target)
        self.video = video
        self.config = config or EncodeConfig()
        self.log = log
        self.frames_written = 0
        self._closed = False
        self._last_pts: Fraction | None = None
        self._container: av.container.OutputContainer | None = None
        self._copy_map: dict[int, av.stream.Stream] = {}
        self._options = dict(options or {})
        if self.is_file:
            self.target = check_writable(target, source, container_format=container_format)
            self.partial: Path | None = partial_path(self.target)
            self._still_format = (stills.IMAGE_SUFFIXES.get(self.target.suffix.lower())
                                  if container_format is None else None)
        else:
            self.target, self.partial, self._still_format = target, None, None
        if self._still_format is not None:
            self._open_still()
        else:
            self._open_container(self._format_name(container_format), copy_streams)

    @property
    def name(self) -> str:
        """The file being written (partial name while unfinished), or the stream."""
        return str(self.partial) if self.partial is not None else endpoints.describe(self.target, output=True)

    def _format_name(self, container_format: str | None) -> str:
        if self.is_file:
            return container_format_for(self.target, container_format)
        chosen = container_format or endpoints.output_format_for(self.target)
        if chosen is None:
            raise OutputError(f"{endpoints.describe(self.target, output=True)}: a stream output needs a container "
                              f"format; give one with --format, e.g. --format mpegts (or matroska, nut, flv)")
        return container_format_for(self.target, chosen)

    # --- opening ---------------------------------------------------------------

    def _open_still(self) -> None:
        if not self.video.is_still and self.video.frame_count != 1:
            raise OutputError(f"{self.target}: an image file holds one frame and the input is a video; "
                              f"write a video file (.mp4, .mkv) instead")
        self._still_frame: av.VideoFrame | None = None
        self.pix_fmt = self.video.pix_fmt

    def _open_container(self, format_name: str, copy_streams: list) -> None:
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
        for key in ("color_range", "color_primaries", "color_trc", "colorspace"):
            setattr(ctx, key, self._frame_colour()[key])
        if info.sample_aspect_ratio:
            ctx.sample_aspect_ratio = info.sample_aspect_ratio
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def _frame_colour(self) -> dict[str, int]:
        """Colour tags to write; a yuvj format is full range whatever the input said."""
        info = self.video
        full = self.pix_fmt.startswith("yuvj")
        return {"color_range": 2 if full else info.color_range, "color_primaries": info.color_primaries,
                "color_trc": info.color_trc, "colorspace": info.colorspace}

    def _add_copy_streams(self, copy_streams: list) -> None:
        for source in copy_streams:
            stream = add_copied_stream(self._container, source, target=self.target,
                                       drop_uncopyable=self.config.drop_uncopyable, log=self.log)
            if stream is not None:
                self._copy_map[source.index] = stream

    # --- writing ---------------------------------------------------------------

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encode one frame; it must carry the pts and time_base of its source frame."""
        self._check_open()
        info = self.video
        if (frame.width, frame.height) != (info.width, info.height):
            raise ValueError(f"frame {self.frames_written} is {frame.width}x{frame.height}, "
                             f"the output is {info.size}")
        if frame.pts is None or frame.time_base is None:
            raise ValueError(f"frame {self.frames_written} has no pts/time_base; copy them from its source frame")
        if self._still_format is not None:
            self._keep_still(frame)
            return
        self._check_increasing(frame)
        frame = self._prepare(frame)
        try:
            self._container.mux(self._stream.encode(frame))
        except av.error.FFmpegError as exc:
            raise self._write_failed(f"encoding frame {self.frames_written}", exc) from None
        self.frames_written += 1

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
            pts, time_base = frame.pts, frame.time_base
            frame = reformat(frame, format=self.pix_fmt,
                             src_colorspace=stills.swscale_matrix(self.video.colorspace),
                             dst_colorspace=stills.swscale_matrix(self.video.colorspace),
                             src_color_range=self.video.color_range or None,
                             dst_color_range=colour["color_range"] or None)
            frame.pts, frame.time_base = pts, time_base
        for key, value in colour.items():
            setattr(frame, key, value)
        # A decoded frame keeps its source's I/P/B type, which the encoder would obey;
        # the output's GOP structure is the encoder's own choice.
        frame.pict_type = av.video.frame.PictureType.NONE
        return frame

    def _keep_still(self, frame: av.VideoFrame) -> None:
        if self._still_frame is not None:
            raise OutputError(f"{self.target}: an image file holds one frame and the input has more; "
                              f"write a video file (.mp4, .mkv) instead")
        self._still_frame = frame
        self.frames_written += 1

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

    def finish(self) -> Path:
        """Flush, close, and give the file its final name; returns the target."""
        self._check_open()
        if self._still_format is not None:
            self._save_still(self.partial)
        else:
            self._flush_and_close(quiet=False)
        self._closed = True
        if self.partial is None:
            if self.frames_written == 0:
                raise OutputError(f"{self.name}: no frame was written")
            return self.target
        if self.frames_written == 0:
            raise OutputError(f"{self.target}: no frame was written; the incomplete output is left at {self.partial}")
        try:
            os.replace(self.partial, self.target)
        except OSError as exc:
            raise OutputError(f"{self.target}: the finished output could not take its name ({exc}); "
                              f"it is complete at {self.partial}") from None
        return self.target

    def abort(self) -> Path | None:
        """Close what was written so it stays playable; a file keeps the partial name
        (returned), a stream is just closed (None)."""
        if not self._closed:
            self._closed = True
            if self._still_format is not None:
                if self._still_frame is not None:
                    self._save_still(self.partial)
            else:
                self._flush_and_close(quiet=True)
        return self.partial

    def _flush_and_close(self, *, quiet: bool) -> None:
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

    def _save_still(self, path: Path) -> None:
        try:
            stills.write_still(path, self._still_frame, image_format=self._still_format,
                               metadata=self.video.image_metadata, colorspace=self.video.colorspace,
                               color_range=self.video.color_range)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{path}: the image cannot be written ({exc})") from None

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

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.target}: the writer is already finished or aborted")

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        if exc_type is not None:
            try:
                self.abort()
            except Exception as exc:  # the original error matters more; keep this one visible too
                self.log(f"closing {self.name} after an error also failed: {exc}")
        elif not self._closed:
            self.finish()
