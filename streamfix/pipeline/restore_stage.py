"""The restore stage: the Restorer as a pipeline stage, with live deadlines.

The stage protocol and the other built-in stages are in stages.py; the pipeline
builds this one for `{type: restore}` (pipeline.py passes it to stages.build_stages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av

from streamfix.pipeline.live import LiveTiming, RestoreInTime
from streamfix.pipeline.stages import BatchContext
from streamfix.restore.restorer import Restorer


class RestoreStage:
    """Compression-artifact removal: the Restorer as a stage.

    With a deadline, only as many frames are restored as the running estimate of
    inference time says will be done before it; the rest of the batch passes through
    unrestored (counted as passed through and as `late`; live.RestoreInTime decides).
    """

    name = "restore"

    def __init__(self, restorer: Restorer, clock: Callable[[], float] = time.monotonic) -> None:
        self.restorer = restorer
        self._engine: dict[str, Any] = {}
        self._size: tuple[int, int] | None = None
        self.in_time = RestoreInTime(clock=clock)

    def open(self, video: Any) -> Any:
        info = self.restorer.prepare(video)
        self._size = (video.width, video.height)
        engine = self.restorer.engine
        # Kept here because the restorer forgets its engine when it closes.
        self._engine = {"model": info.name, "engine": engine.name, "device": engine.device,
                        "fallbacks": [str(f) for f in self.restorer.fallbacks]}
        return video

    def go_live(self, timing: LiveTiming) -> None:
        """Share the live estimate (the batcher reads it too) and seed it."""
        self.in_time.estimate = timing.estimate
        if self._size is not None:
            self.in_time.warm_up(self.restorer, *self._size)

    def process(self, frames: list[av.VideoFrame], context: BatchContext) -> list[av.VideoFrame]:
        # Side data describes the decoded frames; an earlier stage may have replaced
        # them (same count, same order), so the strengths are read from `decoded`.
        def strengths(n: int) -> list[Any]:
            return [self.restorer.strength_of(d) for d in context.decoded[:n]]

        return self.in_time.restore(self.restorer, frames, strengths, context.deadline)

    def close(self) -> None:
        self.restorer.close()

    def stats(self) -> dict[str, Any]:
        by_tier = getattr(self.restorer, "restored_by_tier", {"full": self.restorer.restored, "light": 0})
        return {**self._engine, "restored": self.restorer.restored, "restored_full": by_tier["full"],
                "restored_light": by_tier["light"],
                "passed_through": self.restorer.passed_through, "late": self.in_time.late}
