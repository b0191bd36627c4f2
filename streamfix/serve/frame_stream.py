"""Restoring a stream of frames on a worker thread, with back-pressure.

An embedder's decode loop hands frames in with `put()` and takes restored frames out
with `get()`, in the same order. Inference runs on the FrameStream's own thread (it
releases the GIL inside the engine), so the caller's decoding and encoding overlap it,
and frames that are waiting when the worker comes round are restored together as one
batch (up to the Restorer's batch size).

Back-pressure: at most `max_pending` frames are inside the stream (waiting, being
restored, or restored but not yet taken). `put()` blocks while it is full, so a fast
producer cannot fill memory; `get()` blocks until the next frame is ready.

Thread-safety: one producer thread calls `put()`/`end()`, one consumer thread calls
`get()`; they may be the same thread only if it never puts more than `max_pending`
frames ahead of what it gets (`restore_all` runs the producer side on a thread of its
own, so it has no such limit). A failure on the worker thread is raised by the next
`get()` as FrameStreamError naming the frame, with the original as `__cause__`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import av

from streamfix.core.errors import StreamfixError
from streamfix.media.qp import frame_qp_map
from streamfix.restore.restorer import Restorer, Strength
from streamfix.core.threads import POLL_S

_END = object()


class FrameStreamError(RuntimeError):
    """Restoring a frame failed on the worker thread (`index`: the frame's position)."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class _Failure:
    def __init__(self, error: BaseException, index: int) -> None:
        self.error, self.index = error, index


class FrameStream:
    """put() frames in, get() restored frames out, in order; see the module docstring.

    Use as a context manager (or call `close()`): the worker thread stops and is joined.
    The Restorer is not closed: it belongs to the caller.
    """

    def __init__(self, restorer: Restorer, *, max_pending: int = 8) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.restorer = restorer
        self.max_pending = max_pending
        self._slots = threading.Semaphore(max_pending)
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._work, name="streamfix-frame-stream", daemon=True)
        self._thread.start()

    # --- producer side ----------------------------------------------------------------

    def put(self, frame: Any, *, qp_map: Any = None, frame_qp: float | None = None,
            jpeg_quality: int | None = None) -> None:
        """Queue one frame (an av.VideoFrame, or the reader's DecodedFrame), blocking
        while `max_pending` frames are inside. An av.VideoFrame's QP map is read from
        its side data when not given (decoders opened with EXPORT_QP_OPTIONS)."""
        if isinstance(frame, av.VideoFrame):
            strength = Strength(qp_map if qp_map is not None else frame_qp_map(frame), frame_qp, jpeg_quality)
        else:
            strength = self.restorer.strength_of(frame)
            frame = frame.frame
        while not self._slots.acquire(timeout=POLL_S):
            if self._stop.is_set():
                raise RuntimeError("the FrameStream is closed")
        self._inbox.put((self._count, frame, strength))
        self._count += 1

    def end(self) -> None:
        """No more frames: `get()` returns None after the last one."""
        self._inbox.put(_END)

    # --- consumer side ----------------------------------------------------------------

    def get(self, timeout: float | None = None) -> av.VideoFrame | None:
        """The next restored frame, in input order; None after `end()` and the last
        frame. Raises queue.Empty after `timeout` seconds (None: wait for it)."""
        item = self._outbox.get(timeout=timeout)
        if item is _END:
            self._outbox.put(_END)  # later calls see the end too
            return None
        if isinstance(item, _Failure):
            self._outbox.put(item)
            if isinstance(item.error, StreamfixError):
                raise item.error
            raise FrameStreamError(f"restoring frame {item.index} failed: {type(item.error).__name__}: "
                                   f"{item.error}", item.index) from item.error
        self._slots.release()
        return item

    def restore_all(self, frames: Iterable[Any]) -> Iterator[av.VideoFrame]:
        """Feed `frames` from a thread of their own and yield the restored frames."""
        feeder_error: list[BaseException] = []

        def feed() -> None:
            try:
                for frame in frames:
                    if self._stop.is_set():
                        return
                    self.put(frame)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer below
                feeder_error.append(exc)
            self.end()

        feeder = threading.Thread(target=feed, name="streamfix-frame-feeder", daemon=True)
        feeder.start()
        try:
            while (frame := self.get()) is not None:
                yield frame
        finally:
            self._stop.set()
            feeder.join()
        if feeder_error:
            raise feeder_error[0]

    # --- the worker -------------------------------------------------------------------

    def _work(self) -> None:
        batch_size = self.restorer.batch_size
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            batch = [first] if first is not _END else []
            ended = first is _END
            while not ended and len(batch) < batch_size:
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if item is _END:
                    ended = True
                else:
                    batch.append(item)
            if batch and not self._restore(batch):
                return
            if ended:
                self._outbox.put(_END)
                return

    def _restore(self, batch: list[tuple[int, av.VideoFrame, Strength]]) -> bool:
        try:
            restored = self.restorer.restore_frames([frame for _, frame, _ in batch], [s for _, _, s in batch])
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._outbox.put(_Failure(exc, batch[0][0]))
            return False
        for frame in restored:
            self._outbox.put(frame)
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
