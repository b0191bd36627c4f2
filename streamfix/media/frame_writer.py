"""What every writer shares: the output target, its `.partial` name, the checks on
each frame, and how writing ends (finish or abort).

- A file is written as `<stem>.partial<suffix>` and `finish()` renames it to the
  target, so a file under the target name is always complete. `abort()` closes what
  was written (still playable) and leaves it under the partial name. The partial
  file is created by this run alone and never through a link (partial_file.py).
- Unwritable targets fail before any decoding or inference starts (`check_writable`).
- A pipe (`-`, `pipe:N`), a URL or a file-like object has no name to rename: it is
  written directly.
- Every frame must have the output's size and carry the pts and time base of its
  source frame; a writer refuses anything else at once, naming the frame.

VideoWriter (video_writer.py) and StillWriter (still_writer.py) fill in how frames
are stored (`_store`), how packets of copied streams are handled (`write_packet`)
and how the output is closed (`_close`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import av

from streamfix.core.errors import OutputError
from streamfix.media import endpoints
from streamfix.media import stills
from streamfix.media.containers import container_format_for
from streamfix.media.decoded import VideoInfo
from streamfix.media.partial_file import PartialFile, partial_path

__all__ = ["FrameWriter", "check_writable", "partial_path"]


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
        if target.exists() and Path(source).exists() and os.path.samefile(target, source):
            raise OutputError(f"{target}: is the input file itself; choose another output name")
    if not (container_format is None and stills.is_image_target(target)):
        container_format_for(target, container_format)
    return target


class FrameWriter(ABC):
    """The shared part of a writer; see the module docstring.

    As a context manager: leaving with an exception calls `abort()`, leaving normally
    calls `finish()` if the caller has not. `source` (the input path) has a target
    that is the input itself refused. `log` receives one line per decision the user
    should know about (a changed pixel format, a dropped stream).
    """

    def __init__(self, target: str | Path | object, video: VideoInfo, *, container_format: str | None,
                 source: str | Path | None, log: Callable[[str], None]) -> None:
        self.is_file = endpoints.is_path(target)
        self.video = video
        self.log = log
        self.frames_written = 0
        self._closed = False
        self._partial_file: PartialFile | None = None
        if self.is_file:
            self.target = check_writable(target, source, container_format=container_format)
            self._partial_file = PartialFile(self.target)
            self.partial: Path | None = self._partial_file.path
            if self._partial_file.note:
                log(self._partial_file.note)
        else:
            self.target, self.partial = target, None

    @property
    def name(self) -> str:
        """The file being written (partial name while unfinished), or the stream."""
        return str(self.partial) if self.partial is not None else endpoints.describe(self.target, output=True)

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Store one frame; it must carry the pts and time_base of its source frame."""
        self._check_open()
        info = self.video
        if (frame.width, frame.height) != (info.width, info.height):
            raise ValueError(f"frame {self.frames_written} is {frame.width}x{frame.height}, "
                             f"the output is {info.size}")
        if frame.pts is None or frame.time_base is None:
            raise ValueError(f"frame {self.frames_written} has no pts/time_base; copy them from its source frame")
        self._store(frame)
        self.frames_written += 1

    @abstractmethod
    def write_packet(self, packet: av.Packet) -> None:
        """Remux one packet of a copied stream (or drop it where the output has none)."""

    def finish(self) -> Path:
        """Close the output and give the file its final name; returns the target."""
        self._check_open()
        try:
            self._close(quiet=False)
        except BaseException:
            if self._partial_file is not None:
                self._partial_file.close()
            raise
        self._closed = True
        if self.partial is None:
            if self.frames_written == 0:
                raise OutputError(f"{self.name}: no frame was written")
            return self.target
        if self.frames_written == 0:
            if self.partial.exists() and self.partial.stat().st_size == 0:
                self._partial_file.remove()  # nothing in it (a still image is saved only when finished)
            else:
                self._partial_file.close()
            left = f"; the incomplete output is left at {self.partial}" if self.partial.exists() else ""
            raise OutputError(f"{self.target}: no frame was written{left}")
        self._partial_file.rename_to_target()
        return self.target

    def abort(self) -> Path | None:
        """Close what was written so it stays playable; a file keeps the partial name
        (returned), a stream is just closed (None)."""
        if not self._closed:
            self._closed = True
            try:
                self._close(quiet=True)
            finally:
                if self._partial_file is not None:
                    self._partial_file.close()
        return self.partial

    @property
    def _write_path(self) -> str:
        """What the encoder or image library opens: this run's own partial file."""
        return self._partial_file.open_path

    def _remove_partial(self) -> None:
        """Undo the partial file after a failed open: nothing useful was written."""
        if self._partial_file is not None:
            self._partial_file.remove()

    @abstractmethod
    def _store(self, frame: av.VideoFrame) -> None:
        """Encode or keep one checked frame."""

    @abstractmethod
    def _close(self, *, quiet: bool) -> None:
        """Write out what is pending and close; `quiet`: after an error, raise nothing new."""

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self.target}: the writer is already finished or aborted")

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        if exc_type is not None:
            try:
                self.abort()
            except Exception as exc:  # the original error matters more; keep this one visible too
                self.log(f"closing {self.name} after an error also failed: {exc}")
        elif not self._closed:
            self.finish()
