"""Counters of one running stream, for media servers that watch many.

The pipeline's threads update a StreamMetrics as frames pass (frames in/out, the
latency of each frame from decoder to encoder); `snapshot()` adds what is read live
(queue depths, busy seconds per stage, the restore stage's counts and engine) and can
be called from any thread at any time, also while the run is going. The Prometheus
endpoint (streamfix/serve/metrics_server.py) serves these snapshots.

Counters are plain ints and floats, each written by one thread only; snapshot()
reads them without stopping anyone, so two numbers in one snapshot may be a frame
apart, never wrong by more.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class StreamMetrics:
    """Live counters for one stream (one Pipeline); see the module docstring."""

    def __init__(self, name: str, source: str = "", target: str = "") -> None:
        self.name, self.source, self.target = name, source, target
        self.frames_in = 0
        self.frames_out = 0
        self.live = False
        self.running = False
        self.latency_last_s = 0.0
        self.latency_max_s = 0.0
        self._latency_sum_s = 0.0
        self._queues: Mapping[str, queue.Queue] = {}
        self._busy: Callable[[], dict[str, float]] = dict
        self._stages: Callable[[], dict[str, dict[str, Any]]] = dict

    def attach(self, queues: Mapping[str, queue.Queue], busy: Callable[[], dict[str, float]],
               stages: Callable[[], dict[str, dict[str, Any]]]) -> None:
        """Where the live numbers come from (called by the pipeline as it starts)."""
        self._queues, self._busy, self._stages = queues, busy, stages

    def frame_written(self, latency_s: float | None) -> None:
        self.frames_out += 1
        if latency_s is not None:
            self.latency_last_s = latency_s
            self.latency_max_s = max(self.latency_max_s, latency_s)
            self._latency_sum_s += latency_s

    def latency(self) -> dict[str, float]:
        mean = self._latency_sum_s / self.frames_out if self.frames_out else 0.0
        return {"last": self.latency_last_s, "mean": mean, "max": self.latency_max_s}

    def snapshot(self) -> dict[str, Any]:
        stages = self._stages()
        restore = stages.get("restore", {})
        return {
            "stream": self.name, "input": self.source, "output": self.target,
            "running": self.running, "live": self.live,
            "frames_in": self.frames_in, "frames_out": self.frames_out,
            "restored": restore.get("restored", 0), "passed_through": restore.get("passed_through", 0),
            "late": restore.get("late", 0), "restored_light": restore.get("restored_light", 0),
            "queue_depth": {name: q.qsize() for name, q in self._queues.items()},
            "stage_seconds": dict(self._busy()),
            "latency_s": self.latency(),
            "engine": restore.get("engine"), "device": restore.get("device"), "model": restore.get("model"),
        }


def stage_stats(stages: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Each stage's `stats()` (stages without one are left out)."""
    result: dict[str, dict[str, Any]] = {}
    for stage in stages:
        stats = getattr(stage, "stats", None)
        if callable(stats):
            result[stage.name] = stats()
    return result
