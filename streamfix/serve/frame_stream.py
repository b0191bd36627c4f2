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
`get()` once the frames restored before it were taken, as FrameStreamError naming the
stage and frame, with the original as `__cause__` (core/threads.py); an error raised by
the iterable given to `restore_all` reaches its consumer as it is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

import av

from streamfix.core.threads import END, Control, Stopped, Worker, WorkerError
from streamfix.restore.restorer import Restorer
from streamfix.restore.strength import Strength, strength_of_frame

FEED = "feed"  # the thread restore_all reads the caller's frames on


class FrameStreamError(WorkerError):
    """Restoring a frame failed on the worker thread (`index`: the frame's position)."""


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
        # A slot is held from put() until get() hands the frame out, so the frames
        # waiting, being restored and restored-but-not-taken never exceed max_pending;
        # the queues hold at most that many frames and the end marker.
        self._slots = threading.Semaphore(max_pending)
        self._inbox: queue.Queue = queue.Queue(max_pending + 1)
        self._outbox: queue.Queue = queue.Queue(max_pending + 1)
        self._control = Control()
        self._count = 0
        self._worker = Worker("restore", self._work, self._control).start()

    # --- producer side ----------------------------------------------------------------

    def put(self, frame: Any, *, qp_map: Any = None, frame_qp: float | None = None,
            jpeg_quality: int | None = None) -> None:
        """Queue one frame (an av.VideoFrame, or the reader's DecodedFrame), blocking
        while `max_pending` frames are inside. An av.VideoFrame's QP map is read from
        its side data when not given (decoders opened with EXPORT_QP_OPTIONS)."""
        try:
            self._put(frame, qp_map, frame_qp, jpeg_quality)
        except Stopped:
            self._raise_failure()

    def end(self) -> None:
        """No more frames: `get()` returns None after the last one."""
        try:
            self._control.put(self._inbox, END)
        except Stopped:
            self._raise_failure()

    def _put(self, frame: Any, qp_map: Any = None, frame_qp: float | None = None,
             jpeg_quality: int | None = None) -> None:
        if self._control.stop.is_set():
            raise Stopped
        if isinstance(frame, av.VideoFrame):
            strength = strength_of_frame(frame, qp_map=qp_map, frame_qp=frame_qp, jpeg_quality=jpeg_quality)
        else:
            strength = self.restorer.strength_of(frame)
            frame = frame.frame
        self._control.wait(lambda seconds: self._slots.acquire(timeout=seconds))
        self._control.put(self._inbox, (self._count, frame, strength))
        self._count += 1

    # --- consumer side ----------------------------------------------------------------

    def get(self, timeout: float | None = None) -> av.VideoFrame | None:
        """The next restored frame, in input order; None after `end()` and the last
        frame. Raises queue.Empty after `timeout` seconds (None: wait for it)."""
        try:
            item = self._control.get(self._outbox, timeout=timeout)
        except Stopped:
            try:  # frames restored before a failure or a close are still handed out
                item = self._outbox.get_nowait()
            except queue.Empty:
                self._raise_failure()
        if item is END:
            self._outbox.put(END)  # later calls see the end too
            return None
        self._slots.release()
        return item

    def _raise_failure(self) -> NoReturn:
        failure = self._control.failure
        if failure is None:
            raise RuntimeError("the FrameStream is closed")
        if failure.stage == FEED:
            raise failure.error  # the caller's own iterable failed: its error as it is
        raise failure.caller_error(FrameStreamError)

    def restore_all(self, frames: Iterable[Any]) -> Iterator[av.VideoFrame]:
        """Feed `frames` from a thread of their own and yield the restored frames."""

        def feed(worker: Worker) -> None:
            for frame in frames:
                self._put(frame)
            self._control.put(self._inbox, END)

        feeder = Worker(FEED, feed, self._control).start()
        try:
            while (frame := self.get()) is not None:
                yield frame
        finally:
            self._control.stop.set()
            feeder.thread.join()

    # --- the worker -------------------------------------------------------------------

    def _work(self, worker: Worker) -> None:
        while True:
            batch, ended = self._next_batch()
            if batch:
                worker.index = batch[0][0]
                restored = self.restorer.restore_frames([frame for _, frame, _ in batch], [s for _, _, s in batch])
                for frame in restored:
                    self._control.put(self._outbox, frame)
            if ended:
                self._control.put(self._outbox, END)
                return

    def _next_batch(self) -> tuple[list[tuple[int, av.VideoFrame, Strength]], bool]:
        """The frames waiting now (at least one, at most a batch), and whether the end came."""
        batch: list[tuple[int, av.VideoFrame, Strength]] = []
        item = self._control.get(self._inbox)
        while item is not END:
            batch.append(item)
            if len(batch) == self.restorer.batch_size:
                return batch, False
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def close(self) -> None:
        self._control.stop.set()
        self._worker.thread.join()

    def __enter__(self) -> "FrameStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def restore_stream(restorer: Restorer, frames: Iterable[Any], *, max_pending: int = 8) -> Iterator[av.VideoFrame]:
    """Restore `frames` (av.VideoFrames or the reader's DecodedFrames) on a worker
    thread, yielding them in order. At most `max_pending` frames are held at once:
    the iterable is read only as fast as frames are restored (back-pressure). The
    Restorer must not be used by anything else meanwhile. (This was
    `Restorer.stream()`; it lives here so the Restorer knows nothing of threads.)"""
    with FrameStream(restorer, max_pending=max_pending) as stream:
        yield from stream.restore_all(frames)
