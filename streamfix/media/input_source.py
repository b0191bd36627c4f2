"""Opening the input container for any endpoint, and opening it again after a break.

- A local file is checked before anything reads it (missing, a directory, unreadable,
  empty), so the user reads what is wrong with it rather than FFmpeg's guess. A named
  pipe has size 0 and is refused as empty here, before a reader could block on it.
- stdin becomes FFmpeg's pipe protocol on a non-blocking descriptor, so FFmpeg polls
  it and its read timeout works (a blocking read of a silent pipe would never
  return); the descriptor gets its blocking mode back when the reader closes.
- URLs get the protocols' own timeout options on top of PyAV's read timeout (see
  endpoints.py for why both).
- An open PyAV container passed in is used as it is and left open: its owner closes it.
- Opening a pipe or a URL can wait up to the input timeout for a silent sender, inside
  FFmpeg, where Python's signal handlers cannot run (measured: Ctrl-C during a 30 s
  open of a silent udp:// input took effect after the 30 s, and was then reported as
  "cannot open the stream"). So such an open runs on a helper thread while the
  caller waits for it in short slices: Ctrl-C and SIGTERM take effect at once. The
  open itself is never cut short (a shorter FFmpeg timeout per attempt would abort
  slow but healthy opens and lose the bytes a pipe had already given); an abandoned
  open closes its container when it returns.
- Tags that are not valid UTF-8 (damaged or oddly written files) are read with
  replacement characters rather than failing the open.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import av

from streamfix.core.errors import InputError
from streamfix.core.threads import POLL_S, raise_if_stop_requested
from streamfix.media import endpoints


def check_input_file(path: Path) -> None:
    """Raise InputError if `path` is not a readable, non-empty file."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a video or image file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied); check the file's permissions")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); it holds no frames")


class InputSource:
    """Where a video reader's container comes from; `open()` may be called again to
    reconnect. `name` is how messages call the source."""

    def __init__(self, source: str | Path | object, *, input_format: str | None,
                 options: dict[str, str], timeout_s: float) -> None:
        self.source = source
        self.name = str(source) if isinstance(source, (str, Path)) else endpoints.describe(source)
        self.live = endpoints.is_live(source) if isinstance(source, str) else False
        self.is_url = endpoints.is_url(source)
        self._format, self._options, self._timeout_s = input_format, options, timeout_s
        self._owns_container = not isinstance(source, av.container.InputContainer)
        self._pipe_fd: int | None = None
        self._pipe_blocking: bool | None = None

    def open(self) -> av.container.InputContainer:
        if not self._owns_container:
            return self.source
        options = dict(self._options)
        if self.is_url:
            options = {**endpoints.timeout_options(self.source, self._timeout_s), **options}
        target = self._target()

        def open_container() -> av.container.InputContainer:
            return av.open(target, format=self._format, options=options, metadata_errors="replace",
                           timeout=(self._timeout_s, self._timeout_s))

        try:
            if self.live or self.is_url:
                return _open_interruptibly(open_container)
            return open_container()
        except av.error.FFmpegError as exc:
            self.restore_pipe()
            raise_if_stop_requested()  # a signal during the wait ends the run as a signal, not as a failure
            if self.live or self.is_url:
                raise InputError(f"{self.name}: cannot open the stream ({exc.strerror}); check the "
                                 f"address, that the sender is running, and --input-format") from None
            raise InputError(f"{self.name}: cannot be read as a video ({exc.strerror}); it is "
                             f"not a media file, or it is truncated or corrupt") from None

    def close(self, container: av.container.InputContainer) -> None:
        """Close `container`, unless the caller opened it."""
        if self._owns_container:
            container.close()

    def _target(self) -> object:
        """What av.open reads: stdin and `pipe:N` on a non-blocking descriptor."""
        source = self.source
        if source == endpoints.PIPE:
            if os.isatty(0):
                raise InputError("-: stdin is a terminal, not a stream; pipe one in, e.g. "
                                 "`ffmpeg -i in.mp4 -c copy -f mpegts - | streamfix run - out.mkv`")
            source = "pipe:0"
        if isinstance(source, str) and source.startswith("pipe:") and source[5:].isdigit():
            fd = int(source[5:])
            if self._pipe_blocking is None:
                self._pipe_fd, self._pipe_blocking = fd, os.get_blocking(fd)
            os.set_blocking(fd, False)
        return str(source) if isinstance(source, Path) else source

    def restore_pipe(self) -> None:
        """Give a pipe descriptor back in the blocking mode it came in."""
        if self._pipe_blocking is not None:
            try:
                os.set_blocking(self._pipe_fd, self._pipe_blocking)
            except OSError:
                pass
            self._pipe_blocking = None


def _open_interruptibly(open_container: Callable[[], av.container.InputContainer]) -> av.container.InputContainer:
    """`open_container()` on a helper thread, waited for in POLL_S slices (see the
    module docstring). An exception in the caller (KeyboardInterrupt from a signal
    handler) leaves the open running; its container is closed when it returns."""
    box: dict[str, object] = {}
    lock = threading.Lock()

    def attempt() -> None:
        try:
            container = open_container()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            box["error"] = exc
            return
        with lock:
            if box.get("abandoned"):
                container.close()
            else:
                box["container"] = container

    thread = threading.Thread(target=attempt, name="streamfix-open-input", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(POLL_S)
            raise_if_stop_requested()
    except BaseException:
        with lock:
            box["abandoned"] = True
            opened = box.pop("container", None)
        if opened is not None:
            opened.close()
        raise
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["container"]  # type: ignore[return-value]
