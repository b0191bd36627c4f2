"""The Batcher's flush rules, driven by a fake clock (no sleeping, no timing asserts)."""

from __future__ import annotations

import pytest

from streamfix.pipeline.batching import Batch, Batcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frames_of(batches: list[Batch]) -> list[list[str]]:
    return [list(b.frames) for b in batches]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_full_batch_leaves_at_once(clock):
    batcher = Batcher(3, 0.02, clock=clock)
    assert batcher.add_frame("f0", (64, 48)) == []
    assert batcher.add_frame("f1", (64, 48)) == []
    ready = batcher.add_frame("f2", (64, 48))
    assert frames_of(ready) == [["f0", "f1", "f2"]]
    assert batcher.wait_s() is None and batcher.flush() == []


def test_partial_batch_waits_for_the_timeout_from_its_first_frame(clock):
    batcher = Batcher(4, 0.02, clock=clock)
    batcher.add_frame("f0", "size")
    clock.now += 0.015
    batcher.add_frame("f1", "size")
    assert batcher.due() == []
    assert batcher.wait_s() == pytest.approx(0.005)
    clock.now += 0.005
    assert frames_of(batcher.due()) == [["f0", "f1"]]
    # The next batch's timer starts with its own first frame.
    clock.now += 1.0
    batcher.add_frame("f2", "size")
    assert batcher.due() == [] and batcher.wait_s() == pytest.approx(0.02)


def test_zero_timeout_never_holds_a_frame(clock):
    batcher = Batcher(8, 0.0, clock=clock)
    batcher.add_frame("f0", "size")
    assert batcher.wait_s() == 0.0
    assert frames_of(batcher.due()) == [["f0"]]


def test_end_of_stream_flushes_the_rest(clock):
    batcher = Batcher(4, 10.0, clock=clock)
    batcher.add_frame("f0", "size")
    batcher.add_other("a0")
    flushed = batcher.flush()
    assert [b.entries for b in flushed] == [["f0", "a0"]]
    assert batcher.flush() == []


def test_frames_of_different_sizes_never_share_a_batch(clock):
    batcher = Batcher(4, 10.0, clock=clock)
    batcher.add_frame("small0", (64, 48))
    batcher.add_frame("small1", (64, 48))
    ready = batcher.add_frame("big0", (80, 64))
    assert frames_of(ready) == [["small0", "small1"]]
    assert frames_of(batcher.flush()) == [["big0"]]


def test_packets_keep_their_place_between_frames(clock):
    batcher = Batcher(2, 10.0, clock=clock)
    # A packet with no frame pending leaves at once, alone.
    first = batcher.add_other("a0")
    assert [b.entries for b in first] == [["a0"]] and first[0].frames == []
    batcher.add_frame("f0", "size")
    batcher.add_other("a1")
    batcher.add_other("s0")
    ready = batcher.add_frame("f1", "size")
    assert [b.entries for b in ready] == [["f0", "a1", "s0", "f1"]]
    assert frames_of(ready) == [["f0", "f1"]]


def test_packets_cannot_grow_a_pending_batch_without_limit(clock):
    batcher = Batcher(4, 10.0, max_entries=5, clock=clock)
    batcher.add_frame("f0", "size")
    ready = []
    for k in range(4):
        ready += batcher.add_other(f"a{k}")
    assert [b.entries for b in ready] == [["f0", "a0", "a1", "a2", "a3"]]


def test_with_frames_replaces_frames_and_keeps_packets_in_order():
    batch = Batch(entries=["f0", "a0", "f1", "a1"], frames=["f0", "f1"])
    assert batch.with_frames(["F0", "F1"]) == ["F0", "a0", "F1", "a1"]
    with pytest.raises(ValueError, match="2 frames in the batch but 1 outputs"):
        batch.with_frames(["F0"])


@pytest.mark.parametrize("size, timeout", [(0, 0.02), (4, -1.0)])
def test_bad_settings_are_refused(size, timeout):
    with pytest.raises(ValueError):
        Batcher(size, timeout)
