"""Progress reporting for `streamfix run`: a bar on a terminal, plain lines in logs.

A tqdm bar is the right thing on a terminal and garbage in a CI log or a file (one
carriage-return-joined megabyte line), so when stderr is not a terminal we print one
plain line every `interval_s` instead. `--quiet` prints nothing.

Only the encode thread calls `update`; `log` may be called from any stage thread, so
messages (engine choice, passed-through frames) never tear the bar. In live mode a
`status` callable adds the restored / passed-through counts to the bar and the lines.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

from tqdm import tqdm

from streamfix.pipeline.run_config import ProgressConfig


class Progress(Protocol):
    def update(self, frames: int = 1) -> None: ...

    def tick(self) -> None: ...  # called often by the waiting thread: report if it is time

    def log(self, message: str) -> None: ...

    def close(self) -> None: ...


class SilentProgress:
    """Reports nothing (`--quiet`, or an embedder that has its own UI)."""

    def update(self, frames: int = 1) -> None:
        pass

    def tick(self) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar with frames, fps and ETA (the ETA needs a known frame count)."""

    def __init__(self, total: int | None, stream: TextIO, status: Callable[[], str] | None = None) -> None:
        self._bar = tqdm(total=total or None, unit="frame", file=stream, dynamic_ncols=True,
                         smoothing=0.1, desc="restoring")
        self._status = status
        self._lock = threading.Lock()

    def update(self, frames: int = 1) -> None:
        with self._lock:
            if self._status is not None:
                self._bar.set_postfix_str(self._status(), refresh=False)
            self._bar.update(frames)

    def tick(self) -> None:
        with self._lock:
            self._bar.refresh()  # keeps elapsed time and rate moving between frames

    def log(self, message: str) -> None:
        with self._lock:
            self._bar.write(message, file=self._bar.fp)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class LineProgress:
    """One plain line every `interval_s`: frames done, fps and, when known, the ETA."""

    def __init__(self, total: int | None, stream: TextIO, interval_s: float,
                 clock: Callable[[], float] = time.monotonic, status: Callable[[], str] | None = None) -> None:
        self._total = total or None
        self._status = status
        self._stream = stream
        self._interval = interval_s
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._done = 0
        self._lock = threading.Lock()

    def update(self, frames: int = 1) -> None:
        with self._lock:
            self._done += frames
        self.tick()

    def tick(self) -> None:
        """A line when `interval_s` has passed, whether or not a frame came out since
        (a slow batch must not silence the log: that looks like a hang)."""
        with self._lock:
            now = self._clock()
            if now - self._last >= self._interval:
                self._last = now
                self._write(self._line(now))

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = now - self._start
        fps = self._done / elapsed if elapsed > 0 else 0.0
        line = f"streamfix: {self._done}"
        if self._total:
            line += f"/{self._total}"
        line += f" frames, {fps:.1f} fps, elapsed {format_duration(elapsed)}"
        if self._total and fps > 0 and self._done < self._total and not final:
            line += f", ETA {format_duration((self._total - self._done) / fps)}"
        if self._status is not None:
            line += f", {self._status()}"
        return line

    def _write(self, line: str) -> None:
        print(line, file=self._stream, flush=True)

    def log(self, message: str) -> None:
        with self._lock:
            self._write(message)

    def close(self) -> None:
        with self._lock:
            if self._done:
                self._write(self._line(self._clock(), final=True))


def _is_sized_terminal(stream: TextIO) -> bool:
    """A terminal with a known width: a pty of width 0 (some IDE consoles, `script`
    into a file) would show tqdm's bar as nothing at all."""
    if not stream.isatty():
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # a terminal that cannot say its size: assume a normal one


def make_progress(config: ProgressConfig, total: int | None, *, quiet: bool = False,
                  stream: TextIO | None = None, status: Callable[[], str] | None = None) -> Progress:
    """The reporter for `config.mode`; "auto" picks the bar only on a terminal."""
    stream = stream or sys.stderr
    mode = "off" if quiet else config.mode
    if mode == "auto":
        mode = "bar" if _is_sized_terminal(stream) else "lines"
    if mode == "bar":
        return BarProgress(total, stream, status)
    if mode == "lines":
        return LineProgress(total, stream, config.interval_s, status=status)
    return SilentProgress()
