"""Grouping decoded frames into batches for the engine without holding frames back.

A GPU engine is fastest on batches, but a batch that waits to fill adds latency: the
last frames of a file, or the frames of a live stream that arrive one every 40 ms,
must not sit in a half-full batch. So a partial batch leaves after `timeout_s` (timed
from its first frame), when the stream ends, or when the next frame has another size
(frames of different sizes never share a batch: the engine takes one N x C x H x W
array).

Packets of copied streams (audio, subtitles) ride along in the batch they arrived
in, in demux order, so the encoder writes them exactly where the demuxer put them
relative to the video frames. A packet that arrives while no frame is pending leaves
at once.

In live mode each frame also has a deadline (see live.py), and a partial batch leaves
early enough for its oldest frame to be restored in time: at its deadline minus the
predicted restoring time (`reserve`), if that comes before the timeout. A batch whose
frames are already too late leaves at once, to pass through without waiting.

The Batcher is plain logic driven by its caller, with the clock injected, so the
flush rules are tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Batch:
    """A run of consecutive demuxed items: video frames and the packets between them.

    `entries` keeps every item in demux order; `frames` are the video frames among
    them (same objects, same order), which is what the process stage works on.
    """

    entries: list[Any] = field(default_factory=list)
    frames: list[Any] = field(default_factory=list)
    started: float = 0.0  # clock time of the first frame (for timeouts)
    deadline: float | None = None  # the earliest deadline among its frames (live mode)

    def with_frames(self, outputs: list[Any]) -> list[Any]:
        """`entries` with each frame replaced by its output (one output per frame)."""
        if len(outputs) != len(self.frames):
            raise ValueError(f"{len(self.frames)} frames in the batch but {len(outputs)} outputs")
        result, k = [], 0
        for entry in self.entries:
            if k < len(self.frames) and entry is self.frames[k]:
                result.append(outputs[k])
                k += 1
            else:
                result.append(entry)
        return result


class Batcher:
    """Collects frames into batches of up to `size`, flushing partial ones in time.

    The caller feeds items with `add_frame` / `add_other` and, when no item arrived,
    asks `due()` whether the pending batch has waited long enough; `wait_s()` says how
    long it may block waiting for the next item. At the end of the stream, `flush()`.
    Every method returns the batches that are ready, oldest first.
    """

    def __init__(self, size: int, timeout_s: float, *, max_entries: int = 0,
                 reserve: Callable[[int], float] = lambda frames: 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        if timeout_s < 0:
            raise ValueError(f"batch timeout must be 0 or more seconds, got {timeout_s}")
        self.size = size
        self.timeout_s = timeout_s
        # Packets attached to a pending batch are capped too, so a stream with much
        # audio and little video cannot grow a batch without limit.
        self.max_entries = max_entries or 8 * size + 64
        self._clock = clock
        self._reserve = reserve  # seconds needed to process a batch of n frames
        self._pending = Batch()
        self._key: Hashable | None = None

    def add_frame(self, frame: Any, key: Hashable, deadline: float | None = None) -> list[Batch]:
        """Add a video frame; `key` (e.g. width, height, format) must match to share a
        batch. `deadline`: when the frame must be done (live mode)."""
        ready = []
        if self._pending.frames and key != self._key:
            ready.append(self._take())
        if not self._pending.frames:
            self._pending.started = self._clock()
            self._key = key
        self._pending.entries.append(frame)
        self._pending.frames.append(frame)
        if deadline is not None and (self._pending.deadline is None or deadline < self._pending.deadline):
            self._pending.deadline = deadline
        if len(self._pending.frames) >= self.size or len(self._pending.entries) >= self.max_entries:
            ready.append(self._take())
        return ready

    def add_other(self, item: Any) -> list[Batch]:
        """Add a non-video item (a copied packet); it keeps its place among the frames."""
        if not self._pending.frames:
            return [Batch(entries=[item], started=self._clock())]
        self._pending.entries.append(item)
        if len(self._pending.entries) >= self.max_entries:
            return [self._take()]
        return []

    def wait_s(self) -> float | None:
        """Seconds until the pending batch is due, or None when nothing is pending."""
        pending = self._pending
        if not pending.frames:
            return None
        due = pending.started + self.timeout_s
        if pending.deadline is not None:
            due = min(due, pending.deadline - self._reserve(len(pending.frames)))
        return max(0.0, due - self._clock())

    def due(self) -> list[Batch]:
        """The pending batch if it has waited `timeout_s` since its first frame, or
        must leave now to be restored before its deadline."""
        wait = self.wait_s()
        if wait is None or wait > 0:
            return []
        return [self._take()]

    def flush(self) -> list[Batch]:
        """Everything pending (end of stream)."""
        return [self._take()] if self._pending.entries else []

    def _take(self) -> Batch:
        batch, self._pending, self._key = self._pending, Batch(), None
        return batch
