"""Worker threads for every part of streamfix that runs work off the caller's thread
(the pipeline's stages, FrameStream, the SharedEngine's scheduler, the WebRTC track):
threads that record where they failed, and waits that never block past a stop request.

Two events stop a set of threads (one Control). `stop` (an error, a close, or a second
Ctrl-C) makes every thread return at its next queue operation or wait. `drain` (Ctrl-C)
only stops the threads that produce work, so what is already processed still reaches
the output. Waits are cut into POLL_S slices so both events are seen within a tenth of
a second; a thread busy inside a long call (one engine batch) sees them when it returns.

A worker that raises records a Failure (its stage, the frame it was on, the error) and
sets `stop`; the thread waiting for its work then raises its `caller_error()`, so
the error surfaces where someone is listening, saying where it happened.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamfix.core.errors import StreamfixError

POLL_S = 0.1  # how often a waiting thread looks at the stop events
END = object()  # end of stream, forwarded from thread to thread

# Set by a signal handler that stops the process (the command line's Ctrl-C and
# SIGTERM) before any worker thread runs. A wait that loops around a native call in
# the caller's thread (an output waiting for its listen-mode client) checks it
# between calls, because the handler's own KeyboardInterrupt can be raised inside a
# native library's callback and lost there (measured with PyAV's error check).
STOP_REQUESTED = threading.Event()


def raise_if_stop_requested() -> None:
    """KeyboardInterrupt if a signal asked the process to stop (STOP_REQUESTED)."""
    if STOP_REQUESTED.is_set():
        raise KeyboardInterrupt


class Stopped(Exception):
    """Raised inside a thread when it must return because another one asked it to."""


class WorkerError(RuntimeError):
    """Work on another thread failed: `stage` and `index` (the frame) say where; the
    original exception is the `__cause__`."""

    def __init__(self, message: str, index: int | None = None, stage: str | None = None) -> None:
        super().__init__(message)
        self.index, self.stage = index, stage


@dataclass(slots=True)
class Failure:
    stage: str
    index: int | None
    error: BaseException

    def __str__(self) -> str:
        where = f" at frame {self.index}" if self.index is not None else ""
        return f"stage {self.stage!r} failed{where}: {type(self.error).__name__}: {self.error}"

    def caller_error(self, kind: type[WorkerError] = WorkerError) -> BaseException:
        """What the thread that waited for the work raises: a StreamfixError as it is
        (its one line already tells the user what to do), anything else as `kind`
        naming the stage and frame, with the original as its `__cause__`."""
        if isinstance(self.error, StreamfixError):
            return self.error
        error = kind(str(self), self.index, self.stage)
        error.__cause__ = self.error
        return error


class Worker:
    """One thread: runs `body(self)`, and records where it was if it fails."""

    def __init__(self, name: str, body: Callable[["Worker"], None], control: "Control") -> None:
        self.name = name  # the stage running now (the pipeline's process thread names each stage)
        self.index: int | None = None  # the frame being worked on
        self.busy_s: dict[str, float] = {}
        self._body, self._control = body, control
        self.thread = threading.Thread(target=self._main, name=f"streamfix-{name}", daemon=True)

    def start(self) -> "Worker":
        self.thread.start()
        return self

    def _main(self) -> None:
        try:
            self._body(self)
        except Stopped:
            pass
        except KeyboardInterrupt:
            self._control.drain.set()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
            self._control.fail(Failure(self.name, self.index, exc))

    def timed(self, label: str, start: float) -> None:
        self.busy_s[label] = self.busy_s.get(label, 0.0) + time.perf_counter() - start


class Control:
    """Stop events and the first failure, shared by a set of threads."""

    def __init__(self) -> None:
        self.stop = threading.Event()  # error, close or second Ctrl-C: every thread returns now
        self.drain = threading.Event()  # Ctrl-C: stop reading, write what is processed
        self.failure: Failure | None = None
        self._lock = threading.Lock()

    def fail(self, failure: Failure) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = failure
        self.stop.set()

    def _check(self, drain_stops: bool) -> None:
        if self.stop.is_set() or (drain_stops and self.drain.is_set()):
            raise Stopped

    def put(self, q: queue.Queue, item: Any, *, drain_stops: bool = False) -> None:
        while True:
            self._check(drain_stops)
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue, *, drain_stops: bool = False, timeout: float | None = None) -> Any:
        """The next item; raises queue.Empty after `timeout` (None: wait for one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check(drain_stops)
            wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def wait(self, ready: Callable[[float], bool]) -> None:
        """Block until `ready(seconds)` returns True, e.g. `event.wait` or
        `lambda s: semaphore.acquire(timeout=s)`. What is ready counts even when a stop
        came at the same time (a result already delivered is not thrown away)."""
        while not ready(POLL_S):
            self._check(drain_stops=False)
