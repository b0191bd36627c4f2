"""Live mode's rules, without sleeping: deadlines from presentation times, the speed
estimate, batches that leave in time, and a restore stage that restores only what
fits before the deadline and passes the rest through in order."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import mediagen as mg
from streamfix.pipeline.batching import Batcher
from streamfix.pipeline.live import DeadlineClock, InferenceEstimate, LiveTiming, RestoreInTime
from streamfix.media.reader import DecodedFrame
from streamfix.pipeline.restore_stage import RestoreStage
from streamfix.pipeline.stages import BatchContext


def test_deadline_is_presentation_time_on_the_wall_clock_plus_the_budget():
    clock = DeadlineClock(0.5)
    assert clock.deadline(pts_s=10.0, arrival=100.0) == pytest.approx(100.5)
    assert clock.deadline(pts_s=10.1, arrival=100.1) == pytest.approx(100.6)


def test_a_frame_that_reaches_the_decoder_late_keeps_the_deadline_it_should_have_had():
    """The backlog sits in the socket where arrival times cannot see it: a frame
    decoded 2 s late must not get 2 s more to be restored."""
    clock = DeadlineClock(0.5)
    clock.deadline(pts_s=0.0, arrival=50.0)
    assert clock.deadline(pts_s=1.0, arrival=53.0) == pytest.approx(51.5 + 0.002)


def test_the_anchor_follows_an_earlier_arrival_at_once_and_a_slow_sender_only_slowly():
    clock = DeadlineClock(0.5)
    clock.deadline(pts_s=0.0, arrival=50.0)
    # The first frame had been delayed (start-up): a less delayed one re-anchors.
    assert clock.deadline(pts_s=1.0, arrival=50.2) == pytest.approx(50.7)
    # A sender whose clock is slow by 1 % drifts later than the anchor may follow.
    for second in range(2, 12):
        deadline = clock.deadline(pts_s=float(second), arrival=49.2 + second * 1.01)
    assert deadline == pytest.approx(49.2 + 11 + 0.002 * 10 + 0.5)


def test_a_source_behind_its_own_clock_is_followed_where_the_reader_waited_for_it():
    """A sender at 27 frames/s of its 30 (or one that stalled and lost the time): where
    the reader waited for the data, nothing was queued in front of the pipeline, so the
    lateness is the source's and the frame keeps its whole budget."""
    clock = DeadlineClock(0.5)
    clock.deadline(pts_s=0.0, arrival=50.0)
    for second in range(1, 11):
        arrival = 50.0 + second / 0.9  # 10 % slower than its timestamps
        deadline = clock.deadline(pts_s=float(second), arrival=arrival, input_idle=True)
        assert deadline == pytest.approx(arrival + 0.5)
    # Data that was waiting in a buffer says nothing about the source: a frame read
    # from a backlog 2 s later keeps the deadline it should have had.
    late = clock.deadline(pts_s=11.0, arrival=50.0 + 10 / 0.9 + 1 + 2.0)
    assert late == pytest.approx(50.0 + 10 / 0.9 + 1 + 0.002 + 0.5)
    # And an earlier arrival still re-anchors at once, idle or not.
    assert clock.deadline(pts_s=12.0, arrival=50.0 + 10 / 0.9 + 1.5, input_idle=True) == pytest.approx(
        50.0 + 10 / 0.9 + 1.5 + 0.5)


def test_live_timing_reads_whether_the_reader_waited_for_a_frame():
    timing = LiveTiming(0.4)
    first, second = decoded(0), decoded(30)
    object.__setattr__(first, "arrival", 20.0)
    object.__setattr__(second, "arrival", 23.0)  # 1 s of stream, 3 s of wall clock
    object.__setattr__(second, "input_idle", True)
    timing.deadline_of(first)
    assert timing.deadline_of(second) == pytest.approx(23.4)


def test_inference_estimate_is_a_running_mean_per_frame():
    estimate = InferenceEstimate(weight=0.5)
    assert estimate.frames_within(0.1, 4) == 4  # nothing measured yet: try
    assert estimate.frames_within(-0.1, 4) == 0  # already late: never
    estimate.record(0.8, 4)
    assert estimate.per_frame_s == pytest.approx(0.2)
    estimate.record(0.4, 1)
    assert estimate.per_frame_s == pytest.approx(0.3)
    assert estimate.seconds_for(2) == pytest.approx(0.6)
    assert estimate.frames_within(0.65, 4) == 2


def test_a_partial_batch_leaves_in_time_for_its_deadline():
    now = [0.0]
    batcher = Batcher(4, timeout_s=0.5, reserve=lambda n: 0.2 * n, clock=lambda: now[0])
    assert batcher.add_frame("a", "key", deadline=0.6) == []
    # due at min(0 + 0.5, 0.6 - 0.2): the timeout alone would make it too late
    assert batcher.wait_s() == pytest.approx(0.4)
    now[0] = 0.41
    (batch,) = batcher.due()
    assert batch.frames == ["a"] and batch.deadline == 0.6


def test_a_frame_already_late_leaves_at_once_and_the_batch_keeps_its_earliest_deadline():
    now = [5.0]
    batcher = Batcher(4, timeout_s=0.02, reserve=lambda n: 0.1, clock=lambda: now[0])
    batcher.add_frame("a", "key", deadline=5.3)
    batcher.add_frame("b", "key", deadline=4.9)
    assert batcher.wait_s() == 0.0
    (batch,) = batcher.due()
    assert batch.deadline == 4.9


class CountingRestorer:
    """Stands in for the Restorer: 'restores' by tagging, counts like it. With
    `light`, it has a light tier (warm-up 0.03 s per frame against the full 0.25 s)."""

    def __init__(self, light: bool = False) -> None:
        self.restored = self.passed_through = 0
        self.calls: list[int] = []
        self.tiers: list[str] = []
        self.tier = "auto"
        self.light_model = "video-x264-qp-lite" if light else None
        self.default_tier = "full"

    def strength_of(self, decoded):
        return None

    def restore_frames(self, frames, strengths, tier=None):
        self.calls.append(len(frames))
        self.tiers.append(tier or "full")
        self.restored += len(frames)
        return [(tier or "full", f) for f in frames]

    def warm_up(self, width, height, tier="full"):  # noqa: D102
        return 0.25 if tier == "full" else 0.03


def decoded(i: int) -> DecodedFrame:
    frame = mg.make_frame(i, 32, 16, "yuv420p", pts=i, time_base=Fraction(1, 30))
    return DecodedFrame(index=i, frame=frame, qp_map=np.full((1, 2), 40), packet_bytes=100, jpeg_quality=None)


def test_restore_stage_restores_what_fits_and_passes_the_rest_in_order():
    now = [10.0]
    restorer = CountingRestorer()
    stage = RestoreStage(restorer, clock=lambda: now[0])  # type: ignore[arg-type]
    stage.in_time.estimate.record(0.3, 1)
    batch = [decoded(i) for i in range(4)]
    frames = [d.frame for d in batch]
    out = stage.process(frames, BatchContext(batch, deadline=10.65))
    assert out[:2] == [("full", frames[0]), ("full", frames[1])]
    assert out[2] is frames[2] and out[3] is frames[3]
    assert stage.stats()["late"] == 2 and restorer.passed_through == 2 and restorer.restored == 2


def test_the_light_tier_restores_what_the_full_model_cannot_make_in_time():
    """Live mode used to pass through every frame the full model could not finish
    before its deadline; with a light model those are restored by it, the time left
    goes to upgrading the first frames to the full model, and only what even the
    light model cannot make passes through."""
    now = [10.0]
    restorer = CountingRestorer(light=True)
    stage = RestoreStage(restorer, clock=lambda: now[0])  # type: ignore[arg-type]
    stage._size = (32, 16)
    stage.go_live(LiveTiming(0.5))  # full 0.25 s, light 0.03 s per frame
    batch = [decoded(i) for i in range(6)]
    frames = [d.frame for d in batch]
    # 0.5 s: all 6 fit as light (0.18 s); one upgrade costs 0.22 s more: 0.40 s fits, two do not.
    out = stage.process(frames, BatchContext(batch, deadline=10.5))
    assert [tag for tag, _ in out] == ["full"] + ["light"] * 5
    assert [f for _, f in out] == frames and stage.stats()["late"] == 0
    # 0.1 s: only 3 light frames fit; the other 3 pass through, in order.
    restorer.tiers.clear()
    stage.in_time.light_estimate.per_frame_s = 0.03  # the stand-in takes no time: reset what it taught
    out = stage.process(frames, BatchContext(batch, deadline=10.1))
    assert restorer.tiers == ["light"] and [o[0] for o in out[:3]] == ["light"] * 3
    assert out[3:] == frames[3:] and stage.stats()["late"] == 3


def test_plans_never_exceed_the_time_left():
    from streamfix.pipeline.live import InferenceEstimate

    in_time = RestoreInTime(InferenceEstimate(), light_estimate=InferenceEstimate())
    in_time.estimate.record(0.4, 1)
    in_time.light_estimate.record(0.05, 1)
    for frames in range(0, 9):
        for seconds in (0.0, 0.04, 0.1, 0.3, 0.8, 2.0, 5.0):
            full, light = in_time.plan(frames, seconds, tiered=True)
            assert full + light <= frames and full >= 0 and light >= 0
            assert in_time.estimate.seconds_for(full) + in_time.light_estimate.seconds_for(light) <= seconds + 1e-9
            # nothing passes through while the light model could still take it
            assert full + light == min(frames, int(seconds / 0.05 + 1e-9))


def test_restore_stage_without_a_deadline_restores_everything():
    restorer = CountingRestorer()
    stage = RestoreStage(restorer)  # type: ignore[arg-type]
    stage.in_time.estimate.record(10.0, 1)  # however slow
    batch = [decoded(i) for i in range(3)]
    stage.process([d.frame for d in batch], BatchContext(batch))
    assert restorer.calls == [3] and stage.stats()["late"] == 0


def test_going_live_seeds_the_shared_estimate_from_a_warm_up_call():
    restorer = CountingRestorer()
    stage = RestoreStage(restorer)  # type: ignore[arg-type]
    stage._size = (32, 16)
    timing = LiveTiming(0.5)
    stage.go_live(timing)
    assert stage.in_time.estimate is timing.estimate and timing.estimate.per_frame_s == pytest.approx(0.25)


def test_live_timing_maps_a_decoded_frame_to_its_deadline():
    timing = LiveTiming(0.4)
    first, second = decoded(0), decoded(3)
    object.__setattr__(first, "arrival", 20.0)
    object.__setattr__(second, "arrival", 20.1)
    assert timing.deadline_of(first) == pytest.approx(20.4)
    assert timing.deadline_of(second) == pytest.approx(20.5)  # 3/30 s later


def test_one_freak_slow_call_does_not_stop_restoring_for_ever():
    """A regression: only restoring updated the estimate, so after one call slowed by
    a busy machine every frame looked too slow to restore, and none was again."""
    now = [0.0]
    restorer = CountingRestorer()
    stage = RestoreStage(restorer, clock=lambda: now[0])  # type: ignore[arg-type]
    stage.in_time.estimate.record(2.0, 1)  # the freak call; the budget is 0.5 s
    batches = 0
    while restorer.restored == 0 and batches < 1000:
        batch = [decoded(batches)]
        stage.process([d.frame for d in batch], BatchContext(batch, deadline=now[0] + 0.5))
        batches += 1
    assert 0 < restorer.restored and batches < 200


def test_a_frame_without_a_timestamp_gets_its_deadline_from_its_arrival():
    """A regression: frames without a pts were all given presentation time 0, so every
    frame after the first got the first one's deadline and passed through as late."""
    timing = LiveTiming(0.4)
    for i, arrival in enumerate([20.0, 21.0, 22.0]):
        frame = decoded(i)
        frame.frame.pts = None
        object.__setattr__(frame, "arrival", arrival)
        assert timing.deadline_of(frame) == pytest.approx(arrival + 0.4)


def test_restore_in_time_restores_what_fits_for_any_caller_and_learns_the_speed():
    now = [0.0]
    in_time = RestoreInTime(clock=lambda: now[0])
    restorer = CountingRestorer()
    in_time.warm_up(restorer, 32, 16)
    assert in_time.estimate.per_frame_s == pytest.approx(0.25)
    asked = []

    def strengths(n):
        asked.append(n)
        return [None] * n

    out = in_time.restore(restorer, ["a", "b", "c"], strengths, deadline=0.6)
    assert out == [("full", "a"), ("full", "b"), "c"] and asked == [2]
    assert in_time.late == 1 and restorer.passed_through == 1
    assert in_time.restore(restorer, ["d"], strengths, deadline=None) == [("full", "d")]
