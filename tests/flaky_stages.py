"""Stages for tests of failing and slow workers (loaded by import path from run configs,
so worker processes import them too)."""

from __future__ import annotations

import os
import time
from pathlib import Path


class _PassThrough:
    name = "test-stage"

    def open(self, video):
        return video

    def close(self) -> None:
        pass


class DieOnce(_PassThrough):
    """Kills its worker process (as the kernel's OOM killer would) the first time a
    frame at or after `at_pts` comes by; `marker` remembers that it happened."""

    def __init__(self, marker: str, at_pts: int) -> None:
        self.marker, self.at_pts = Path(marker), at_pts

    def process(self, frames, context):
        if any(f.pts >= self.at_pts for f in frames) and not self.marker.exists():
            self.marker.write_text("died once")
            os._exit(3)
        return frames


class FailFrom(_PassThrough):
    """Raises for every frame at or after `at_pts`: a piece that keeps failing."""

    def __init__(self, at_pts: int) -> None:
        self.at_pts = at_pts

    def process(self, frames, context):
        if any(f.pts >= self.at_pts for f in frames):
            raise RuntimeError("the lens cap is on")
        return frames


class Slow(_PassThrough):
    """Takes `seconds` per batch, so a test can stop a run in the middle."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, frames, context):
        time.sleep(self.seconds)
        return frames
