"""MPEG-TS clocks that restart, leap or wrap: the output keeps increasing timestamps,
every frame keeps its real duration, audio stays next to its video across the jump,
and one line says what was done."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

import hostile_media as hm
from clirun import run_cli, warnings_about
from streamfix.media.timestamps import OutputTimestamps

FRAME_S = 0.04  # the test clips run at 25 fps


def _times(path) -> tuple[list[float], list[float]]:
    """Video frame times and audio packet times of `path`, in seconds."""
    video, audio = [], []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if not packet.size or packet.pts is None:
                continue
            when = float(packet.pts * packet.time_base)
            (video if packet.stream.type == "video" else audio).append(when)
    return sorted(video), audio


def _check_continuous(path, *, frames: int, audio: bool) -> None:
    video, sound = _times(path)
    assert len(video) == frames
    steps = [b - a for a, b in zip(video, video[1:])]
    # No frame squeezed into a tick, none stretched past a few frame periods.
    assert min(steps) > FRAME_S / 2 and max(steps) < 4 * FRAME_S, steps
    assert video[-1] - video[0] == pytest.approx((frames - 1) * FRAME_S, abs=0.15)
    if audio:
        assert sound == sorted(sound) and len(set(sound)) == len(sound)
        # Each half's first frame has its audio right there, as in the input.
        for first in (video[0], video[frames // 2]):
            assert min(abs(t - first) for t in sound) < 0.03


@pytest.mark.parametrize("audio", [True, False], ids=["with audio", "video only"])
def test_restarting_clock(tmp_path, capsys, audio):
    """Two concatenated recordings: with audio the run failed half-way blaming the disk
    (the muxer refused the audio's falling timestamps); video-only it squeezed the
    second recording's 25 frames into a few ticks."""
    source = hm.ts_restarting_clock(tmp_path / "in.ts", audio=audio)
    code, err, stats = run_cli([source, tmp_path / "out.mkv"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 50 and stats["timestamp_jumps"] == 1
    assert len(warnings_about(err, "timestamps jumped once (back")) == 1
    _check_continuous(tmp_path / "out.mkv", frames=50, audio=audio)


@pytest.mark.parametrize("audio", [True, False], ids=["with audio", "video only"])
def test_clock_wrapping_at_33_bits(tmp_path, capsys, audio):
    """26.5 hours into a broadcast the 33-bit clock wraps to zero mid-file."""
    source = hm.ts_wrapping_clock(tmp_path / "in.ts", audio=audio)
    code, err, stats = run_cli([source, tmp_path / "out.ts"], capsys, tmp_path)
    assert code == 0, err
    assert stats["frames_out"] == 50
    _check_continuous(tmp_path / "out.ts", frames=50, audio=audio)


@pytest.mark.parametrize("audio", [True, False], ids=["with audio", "video only"])
def test_clock_leaping_ahead(tmp_path, capsys, audio):
    """A splice that jumps the clock an hour ahead must not leave an hour-long frame."""
    source = hm.ts_jumping_ahead(tmp_path / "in.ts", audio=audio)
    code, err, stats = run_cli([source, tmp_path / "out.mp4"], capsys, tmp_path)
    assert code == 0, err
    assert stats["timestamp_jumps"] == 1 and len(warnings_about(err, "jumped once (ahead")) == 1
    _check_continuous(tmp_path / "out.mp4", frames=50, audio=audio)


def test_output_timestamps_stay_increasing_on_a_coarser_clock():
    """Two frames 1/90000 s apart in a TS land on the same millisecond in Matroska,
    which the muxer refuses: the second moves one output tick later, and is counted."""
    guard = OutputTimestamps()

    class Stream:
        index, time_base = 0, Fraction(1, 1000)

    packets = []
    for dts in (90000, 90001, 90180):
        packet = av.Packet(b"\x00")
        packet.time_base = Fraction(1, 90000)
        packet.pts = packet.dts = dts
        guard.fit(packet, Stream)
        packets.append(round(float(packet.dts * packet.time_base) * 1000))
    assert packets == [1000, 1001, 1002] and guard.fixed == 1
