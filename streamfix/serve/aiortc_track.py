"""WebRTC with aiortc: a video track that restores the frames of another track.

    from streamfix.serve.aiortc_track import RestoredVideoTrack
    pc.addTrack(RestoredVideoTrack(remote_video_track, assume_qp=36))

Needs the optional extra: `pip install "streamfix[webrtc]"`.

Why it is built this way:
- Inference takes tens to hundreds of milliseconds and must not stall the asyncio
  event loop that runs every peer connection, so it runs on a one-thread executor
  (one thread, because a Restorer serves one caller at a time).
- A WebRTC receiver delivers frames in real time whether or not we keep up, and
  aiortc queues them without limit. So each frame gets a deadline (its timestamp on
  the wall clock plus `max_latency_ms`, see live.py); a frame the running estimate
  says cannot be restored in time goes out unrestored, and the stream never falls
  behind. Frames are never dropped or reordered, and keep their pts.
- The model and engine load in the background when the first frame arrives (its size
  is needed to warm up); frames pass through until they are ready.
- aiortc's decoders export no QP map, and the video model leaves frames of unknown
  strength alone: give `assume_qp` (a typical QP of the incoming stream, e.g. 32-40
  for a low-bitrate call), or frames carrying QP side data are used as they are.

Thread-safety: one consumer calls `recv()` at a time (as aiortc's sender does).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import av
from aiortc import MediaStreamTrack

from streamfix.pipeline.live import LiveTiming
from streamfix.media.qp import frame_qp_map
from streamfix.restore.restorer import VIDEO_MODEL, Restorer, Strength


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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamfix-webrtc")
        self._warm_up: Future | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0
        self.late = 0  # passed through because restoring would have missed the deadline
        self.warming = 0  # passed through while the model was loading

    async def recv(self) -> av.VideoFrame:
        frame = await self.source.recv()
        arrival = time.monotonic()
        self.frames += 1
        if not self._ready(frame):
            self.warming += 1
            return frame
        pts_s = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else arrival
        deadline = self.timing.deadlines.deadline(pts_s, arrival)
        if self.timing.estimate.frames_within(deadline - time.monotonic(), 1) < 1:
            self.late += 1
            return frame
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._restore, frame)

    def _ready(self, frame: av.VideoFrame) -> bool:
        """Start loading in the background on the first frame; True once loaded. A
        change of frame size (a new stream resolution) warms the engine up again."""
        size = (frame.width, frame.height)
        if self._warm_up is None or size != self._size:
            self._size = size
            self._warm_up = self._executor.submit(self._warm, *size)
            return False
        if not self._warm_up.done():
            return False
        self._warm_up.result()  # a load failure is raised here, in the consumer
        return True

    def _warm(self, width: int, height: int) -> None:
        # The first engine call pays for allocations; the second one is measured.
        self.restorer.warm_up(width, height)
        self.timing.estimate.record(self.restorer.warm_up(width, height), 1)

    def _restore(self, frame: av.VideoFrame) -> av.VideoFrame:
        qp_map = frame_qp_map(frame)
        strength = Strength(qp_map, self.assume_qp if qp_map is None else None, None)
        before, start = self.restorer.restored, time.perf_counter()
        restored = self.restorer.restore_frames([frame], [strength])[0]
        self.timing.estimate.record(time.perf_counter() - start, self.restorer.restored - before)
        return restored

    @property
    def restored(self) -> int:
        return self.restorer.restored

    def stats(self) -> dict[str, Any]:
        return {"frames": self.frames, "restored": self.restored, "passed_through": self.frames - self.restored,
                "late": self.late, "warming": self.warming, "per_frame_s": self.timing.estimate.per_frame_s}

    def stop(self) -> None:
        """Stop this track (the source track is left to its owner) and free the engine."""
        super().stop()
        self._executor.shutdown(wait=True)
        if self._owns_restorer:
            self.restorer.close()
