"""The restore stage: the Restorer as a pipeline stage, with live deadlines.

The stage protocol and the other built-in stages are in stages.py; the pipeline
builds this one for `{type: restore}` (pipeline.py passes it to stages.build_stages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av

from streamfix.pipeline.live import InferenceEstimate, LiveTiming
from streamfix.pipeline.stages import BatchContext
from streamfix.restore.restorer import Restorer


class RestoreStage:
    """Compression-artifact removal: the Restorer as a stage.

    With a deadline, only as many frames are restored as the running estimate of
    inference time says will be done before it; the rest of the batch passes through
    unrestored (counted as passed through and as `late`): in live use, late restored
    frames are worse than none. The first frames get restored, the later ones pass:
    either way the whole batch leaves together.
    """

    name = "restore"

    def __init__(self, restorer: Restorer, clock: Callable[[], float] = time.monotonic) -> None:
        self.restorer = restorer
        self._clock = clock
        self._engine: dict[str, Any] = {}
        self._size: tuple[int, int] | None = None
        self.estimate = InferenceEstimate()
        self.late = 0

    def open(self, video: Any) -> Any:
        info = self.restorer.prepare(video)
        self._size = (video.width, video.height)
        engine = self.restorer.engine
        # Kept here because the restorer forgets its engine when it closes.
        self._engine = {"model": info.name, "engine": engine.name, "device": engine.device,
                        "fallbacks": [str(f) for f in self.restorer.fallbacks]}
        return video

    def go_live(self, timing: LiveTiming) -> None:
        """Share the live estimate and seed it: the first engine call is slow (memory
        allocation, kernel choice), so it runs now, and the second one is measured."""
        self.estimate = timing.estimate
        if self._size is not None:
            self.restorer.warm_up(*self._size)
            self.estimate.record(self.restorer.warm_up(*self._size), 1)

    def process(self, frames: list[av.VideoFrame], context: BatchContext) -> list[av.VideoFrame]:
        fits = len(frames)
        if context.deadline is not None:
            fits = self.estimate.frames_within(context.deadline - self._clock(), len(frames))
        # Side data describes the decoded frames; an earlier stage may have replaced
        # them (same count, same order), so the strengths are read from `decoded`.
        strengths = [self.restorer.strength_of(d) for d in context.decoded[:fits]]
        before, start = self.restorer.restored, time.perf_counter()
        restored = self.restorer.restore_frames(frames[:fits], strengths)
        self.estimate.record(time.perf_counter() - start, self.restorer.restored - before)
        late = len(frames) - fits
        if late:
            self.estimate.relax()
        self.late += late
        self.restorer.passed_through += late
        return restored + list(frames[fits:])

    def close(self) -> None:
        self.restorer.close()

    def stats(self) -> dict[str, Any]:
        return {**self._engine, "restored": self.restorer.restored,
                "passed_through": self.restorer.passed_through, "late": self.late}
