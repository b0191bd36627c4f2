"""Live mode: every frame gets a deadline, and frames are restored only where it fits.

A live stream (a pipe, a network source) arrives in real time and must leave in real
time. When restoration is slower than the stream (the full model on a small CPU),
queueing frames for it would build a backlog that grows without end; so instead each
frame gets a deadline, and a batch is restored only if, by the running estimate of
inference time, it will be done before its oldest frame's deadline. Otherwise its
frames pass through unrestored. Frames are never dropped or reordered: a passed-through
frame is the decoded frame itself, with its timestamp. `RestoreInTime` makes that
decision for live mode's restore stage and for the WebRTC track alike.

The deadline is the frame's presentation time mapped onto the wall clock, plus the
latency budget. The mapping is anchored on the least-delayed frame seen so far
(`arrival - pts` at its smallest): a frame that reaches the decoder late because the
pipeline fell behind (the backlog then sits in the socket or pipe, where arrival times
cannot see it) still gets the deadline it should have had. The anchor may rise by
`drift` seconds per stream second, so a sender whose clock runs slightly slow is not
mistaken for a growing backlog. Where the reader had to wait for a frame's data
(`input_idle`: its read took 20 ms or more, so nothing was queued in front of the
pipeline), how late that frame is is the source's doing, not a backlog of ours, and
the anchor rises to it at once. Otherwise a sender that runs slower than its
timestamps, or a stall that lost time, would make every later frame look late for
ever (measured: a 480p sender that managed 16 frames/s of its 30 left 0-1% restored,
now 22%). A read slowed only by a starved thread can pass for such a wait; the
threshold keeps that rare, and a later, less delayed frame lowers the anchor again.

All objects here are shared between threads. Their state is a few floats
written by one thread and read by others (single attribute writes, atomic in CPython),
so no lock is needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av

    from streamfix.restore.restorer import Restorer, Strength

# How fast the anchor may follow a sender whose clock is slower than its timestamps:
# 0.2 %, far more than real clock drift, far less than a backlog builds.
DRIFT = 0.002


class InferenceEstimate:
    """Seconds of restoration per frame, as a running (exponentially weighted) mean."""

    def __init__(self, weight: float = 0.3) -> None:
        self.weight = weight
        self.per_frame_s: float | None = None

    def record(self, seconds: float, frames: int) -> None:
        if frames <= 0:
            return
        sample = seconds / frames
        known = self.per_frame_s
        self.per_frame_s = sample if known is None else known + self.weight * (sample - known)

    def relax(self, factor: float = 0.99) -> None:
        """Trust the estimate a little less (called when frames pass for lack of time).

        Only restoring updates the estimate, so one freak slow call (the machine
        was busy for a moment) could otherwise make every later frame look too slow
        to restore, for ever; relaxing lets a restore be tried again after a while,
        and that restore measures the real speed."""
        if self.per_frame_s is not None:
            self.per_frame_s *= factor

    def seconds_for(self, frames: int) -> float:
        """Predicted time to restore `frames` frames (0 while nothing was measured)."""
        return (self.per_frame_s or 0.0) * frames

    def frames_within(self, seconds: float, most: int) -> int:
        """How many of `most` frames can be restored in `seconds` (all while unmeasured,
        as long as there is time at all)."""
        if seconds <= 0:
            return 0
        if not self.per_frame_s:
            return most
        return max(0, min(most, math.floor(seconds / self.per_frame_s + 1e-9)))  # 0.3 / 0.05 is 5.999...


class DeadlineClock:
    """Deadlines (time.monotonic() values) for frames from their presentation times."""

    def __init__(self, budget_s: float, drift: float = DRIFT) -> None:
        if budget_s <= 0:
            raise ValueError(f"the latency budget must be positive, got {budget_s} s")
        self.budget_s = budget_s
        self.drift = drift
        self._anchor: float | None = None  # wall-clock time of presentation time 0
        self._last_pts_s = 0.0

    def deadline(self, pts_s: float, arrival: float, input_idle: bool = False) -> float:
        offset = arrival - pts_s
        if self._anchor is None or (input_idle and offset > self._anchor):
            self._anchor = offset
        else:
            allowed = self._anchor + self.drift * max(0.0, pts_s - self._last_pts_s)
            self._anchor = min(allowed, offset)
        self._last_pts_s = pts_s
        return pts_s + self._anchor + self.budget_s


class LiveTiming:
    """What live mode shares between the batcher and the restore stage: the latency
    budget, the frames' deadlines and the measured speed of restoration."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.deadlines = DeadlineClock(budget_s)
        self.estimate = InferenceEstimate()
        self.clock = clock

    @property
    def budget_s(self) -> float:
        return self.deadlines.budget_s

    def deadline_of(self, decoded: object) -> float:
        """A DecodedFrame's deadline (its arrival time when it has none, e.g. in tests)."""
        arrival = getattr(decoded, "arrival", None)
        return self.deadline_for(decoded.frame, self.clock() if arrival is None else arrival,  # type: ignore[attr-defined]
                                 input_idle=getattr(decoded, "input_idle", False))

    def deadline_for(self, frame: "av.VideoFrame", arrival: float, input_idle: bool = False) -> float:
        """A frame's deadline from its presentation time; a frame without one (no pts or
        time base) gets the budget from its arrival, and leaves the anchor alone."""
        if frame.pts is None or not frame.time_base:
            return arrival + self.budget_s
        return self.deadlines.deadline(float(frame.pts * frame.time_base), arrival, input_idle)


class RestoreInTime:
    """Restores what the estimates say will be done before the batch's deadline and
    passes the rest through unrestored, in order: late restored frames are worse than
    none in live use. The whole batch leaves together.

    With a light tier (a Restorer with tier="auto" whose model has a NAME-lite), the
    plan is: first make sure as many frames as possible are restored at all (with the
    light model, ~9x cheaper), then spend the time left on upgrading the first of them
    to the full model. Only what even the light model cannot finish passes through.
    Each tier keeps its own estimate; each pass for lack of time relaxes them a little
    (see `InferenceEstimate.relax`).

    `late` counts the frames passed for lack of time; they are counted in the
    restorer's `passed_through` as well.
    """

    def __init__(self, estimate: InferenceEstimate | None = None, clock: Callable[[], float] = time.monotonic,
                 light_estimate: InferenceEstimate | None = None) -> None:
        self.estimate = estimate or InferenceEstimate()  # the full model (or the only tier)
        self.light_estimate = light_estimate or InferenceEstimate()
        self.clock = clock
        self.late = 0

    @staticmethod
    def tiered(restorer: "Restorer") -> bool:
        return getattr(restorer, "tier", "full") == "auto" and getattr(restorer, "light_model", None) is not None

    def warm_up(self, restorer: "Restorer", width: int, height: int) -> None:
        """Seed the estimates: the first engine call is slow (memory allocation, kernel
        choice), so one runs unmeasured and the second is measured, per tier."""
        restorer.warm_up(width, height)
        self.estimate.record(restorer.warm_up(width, height), 1)
        if self.tiered(restorer):
            restorer.warm_up(width, height, "light")
            self.light_estimate.record(restorer.warm_up(width, height, "light"), 1)

    def plan(self, frames: int, seconds: float, tiered: bool) -> tuple[int, int]:
        """(full, light): how many of `frames` frames to restore with each tier when
        `seconds` are left; the rest pass through."""
        if not tiered:
            return self.estimate.frames_within(seconds, frames), 0
        light = self.light_estimate.frames_within(seconds, frames)
        if light < frames:
            return 0, light
        for full in range(frames, -1, -1):
            if self.estimate.seconds_for(full) + self.light_estimate.seconds_for(frames - full) <= seconds:
                return full, frames - full
        return 0, frames

    def restore(self, restorer: "Restorer", frames: Sequence[Any], strengths: Callable[[int], Sequence["Strength"]],
                deadline: float | None) -> list[Any]:
        """`frames`, the first of them restored as far as time allows (all of them when
        `deadline` is None). `strengths(n)` gives the first n frames' strengths: only the
        frames to be restored are asked for."""
        n = len(frames)
        tiered = self.tiered(restorer)
        if deadline is None:
            full, light = n, 0
        else:
            full, light = self.plan(n, deadline - self.clock(), tiered)
        given = strengths(full + light)
        out: list[Any] = []
        parts = [(getattr(restorer, "default_tier", "full"), self.estimate, 0, full)]
        if light:
            parts.append(("light", self.light_estimate, full, full + light))
        for tier, estimate, start, stop in parts:
            if stop <= start:
                continue
            before, began = restorer.restored, time.perf_counter()
            # The tier is named only when it is not the default, so Restorer stand-ins
            # without tiers keep working.
            options = {"tier": tier} if tier != parts[0][0] else {}
            out += restorer.restore_frames(frames[start:stop], given[start:stop], **options)
            # Frames the model leaves alone (unknown strength) take no time: not counted.
            estimate.record(time.perf_counter() - began, restorer.restored - before)
        late = n - full - light
        if late:
            self.estimate.relax()
            self.light_estimate.relax()
            self.late += late
            restorer.passed_through += late
        return out + list(frames[full + light:])
