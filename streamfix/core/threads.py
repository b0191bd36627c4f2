"""The pipeline's thread plumbing: worker threads that record where they failed, and
queue operations that never block past a stop request.

Two events stop a run. `stop` (an error, or a second Ctrl-C) makes every thread
return at its next queue operation. `drain` (Ctrl-C) only stops the threads that
produce work, so what is already processed still reaches the output. Queue waits are
cut into POLL_S slices so both events are seen within a tenth of a second; a thread
busy inside a long call (one engine batch) sees them when it returns.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL_S = 0.1  # how often a waiting thread looks at the stop events
END = object()  # end of stream, forwarded from thread to thread


class Stopped(Exception):
    """Raised inside a thread when it must return because another one asked it to."""


@dataclass(slots=True)
class Failure:
    stage: str
    index: int | None
    error: BaseException


class Worker:
    """One pipeline thread: runs `body(self)`, and records where it was if it fails."""

    def __init__(self, name: str, body: Callable[["Worker"], None], control: "Control") -> None:
        self.name = name  # the stage running now (the process thread names each stage)
        self.index: int | None = None  # the frame being worked on
        self.busy_s: dict[str, float] = {}
        self._body, self._control = body, control
        self.thread = threading.Thread(target=self._main, name=f"streamfix-{name}", daemon=True)

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
    """Stop events and the first failure, shared by all threads."""

    def __init__(self) -> None:
        self.stop = threading.Event()  # error or second Ctrl-C: every thread returns now
        self.drain = threading.Event()  # Ctrl-C: stop reading, write what is processed
        self.failure: Failure | None = None
        self._lock = threading.Lock()

    def fail(self, failure: Failure) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = failure
        self.stop.set()

    def put(self, q: queue.Queue, item: Any, *, drain_stops: bool = False) -> None:
        while True:
            if self.stop.is_set() or (drain_stops and self.drain.is_set()):
                raise Stopped
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue, *, drain_stops: bool = False, timeout: float | None = None) -> Any:
        """The next item; raises queue.Empty after `timeout` (None: wait for one)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.stop.is_set() or (drain_stops and self.drain.is_set()):
                raise Stopped
            wait = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - time.monotonic()))
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
