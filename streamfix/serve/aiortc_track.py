"""WebRTC with aiortc: a video track that restores the frames of another track.

    from streamfix.serve.aiortc_track import RestoredVideoTrack
    pc.addTrack(RestoredVideoTrack(remote_video_track, assume_qp=36))

Needs the optional extra: `pip install "streamfix[webrtc]"`.

Why it is built this way:
- Inference takes tens to hundreds of milliseconds and must not stall the asyncio
  event loop that runs every peer connection, so it runs on a worker thread of its
  own (one thread, because a Restorer serves one caller at a time; core/threads.py).
  `recv()` awaits the result; a failure there is raised by `recv()`, naming the
  frame (or the warm-up) it happened on.
- A WebRTC receiver delivers frames in real time whether or not we keep up, and
  aiortc queues them without limit. So each frame gets a deadline (its timestamp on
  the wall clock plus `max_latency_ms`), and just before restoring it the worker
  asks live.RestoreInTime, as live mode's restore stage does, whether the running
  estimate says it will be done in time; if not it goes out unrestored, and the
  stream never falls behind. Frames are never dropped or reordered, and keep their pts.
- The model and engine load in the background when the first frame arrives (its size
  is needed to warm up); frames pass through until they are ready.
- aiortc's decoders export no QP map, and the video model leaves frames of unknown
  strength alone: give `assume_qp` (a typical QP of the incoming stream, e.g. 32-40
  for a low-bitrate call), or frames carrying QP side data are used as they are.

Thread-safety: one consumer calls `recv()` at a time (as aiortc's sender does).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from streamfix.core.threads import Control, Failure, Worker
from streamfix.pipeline.live import LiveTiming, RestoreInTime
from streamfix.restore.restorer import VIDEO_MODEL, Restorer
from streamfix.restore.strength import strength_of_frame


class RestoredVideoTrack(MediaStreamTrack):
    """A "video" track with `source`'s frames, restored where there is time.

    `restorer`: a Restorer to use (it is closed by `stop()` only if the track made it);
    default: the video model on the best engine. `max_latency_ms`: the most a frame may
    be delayed by restoring it. `assume_qp`: the H.264-style QP assumed for frames
    that carry no QP map (None: such frames pass through).
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack, restorer: Restorer | None = None, *,
                 max_latency_ms: float = 150.0, assume_qp: float | None = None) -> None:
        super().__init__()
        self.source = source
        self._owns_restorer = restorer is None
        self.restorer = restorer or Restorer(VIDEO_MODEL, log=lambda message: None)
        self.assume_qp = assume_qp
        self.timing = LiveTiming(max_latency_ms / 1000.0)
        self.in_time = RestoreInTime(self.timing.estimate)
        # recv() waits for each frame's job and a warm-up only starts once the last one
        # ended, so one job at most is ever waiting: the queue never makes recv() block.
        self._jobs: queue.Queue = queue.Queue(1)
        self._control = Control()
        self._worker = Worker("webrtc", self._serve, self._control).start()
        self._warm_up: Future | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self.warming = 0  # passed through while the model was loading

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.source.recv()
        arrival = time.monotonic()
        self.frames += 1
        if not self._ready(frame):
            self.warming += 1
            return frame
        deadline = self.timing.deadline_for(frame, arrival)
        return await asyncio.wrap_future(self._submit("restore", self.frames - 1, self._restore, frame, deadline))

    def _ready(self, frame: av.VideoFrame) -> bool:
        """Start loading in the background on the first frame; True once loaded. A
        change of frame size (a new stream resolution) warms the engine up again."""
        size = (frame.width, frame.height)
        if size != self._size:
            if self._warm_up is None or self._warm_up.done():
                self._size = size
                self._warm_up = self._submit("warm-up", None, self.in_time.warm_up, self.restorer, *size)
            return False
        if not self._warm_up.done():
            return False
        self._warm_up.result()  # a load failure is raised here, in the consumer
        return True

    def _restore(self, frame: av.VideoFrame, deadline: float) -> av.VideoFrame:
        strength = strength_of_frame(frame, assume_qp=self.assume_qp)
        return self.in_time.restore(self.restorer, [frame], lambda n: [strength][:n], deadline)[0]

    # --- the worker thread --------------------------------------------------------

    def _submit(self, stage: str, index: int | None, call: Callable[..., Any], *args: Any) -> Future:
        done: Future = Future()
        self._control.put(self._jobs, (stage, index, call, args, done))
        return done

    def _serve(self, worker: Worker) -> None:
        while True:
            stage, worker.index, call, args, done = self._control.get(self._jobs)
            try:
                done.set_result(call(*args))
            except BaseException as exc:  # noqa: BLE001 - raised by recv(), which awaits it
                done.set_exception(Failure(stage, worker.index, exc).caller_error())

    @property
    def restored(self) -> int:
        return self.restorer.restored

    def stats(self) -> dict[str, Any]:
        return {"frames": self.frames, "restored": self.restored, "passed_through": self.frames - self.restored,
                "late": self.in_time.late, "warming": self.warming,
                "per_frame_s": self.timing.estimate.per_frame_s}

    def stop(self) -> None:
        """Stop this track (the source track is left to its owner) and free the engine.
        A job under way is finished first; one still waiting is cancelled."""
        super().stop()
        self._control.stop.set()
        self._worker.thread.join()
        try:
            self._jobs.get_nowait()[-1].cancel()
        except queue.Empty:
            pass
        if self._owns_restorer:
            self.restorer.close()
