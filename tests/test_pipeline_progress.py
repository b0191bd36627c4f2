"""Progress reporting: plain lines at an interval off a terminal, nothing when quiet."""

from __future__ import annotations

import io

from streamfix.pipeline.progress import BarProgress, LineProgress, SilentProgress, format_duration, make_progress
from streamfix.pipeline.run_config import ProgressConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_once_per_interval_with_fps_and_eta():
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(100, out, interval_s=5.0, clock=clock)
    for _ in range(10):
        clock.now += 0.4  # 2.5 frames/s
        progress.update()
    assert out.getvalue() == ""  # 4 s: no line yet
    clock.now += 1.0
    progress.update()
    assert out.getvalue() == "streamfix: 11/100 frames, 2.2 fps, elapsed 0:00:05, ETA 0:00:40\n"
    progress.update()
    assert out.getvalue().count("\n") == 1
    progress.close()
    assert out.getvalue().splitlines()[-1] == "streamfix: 12/100 frames, 2.4 fps, elapsed 0:00:05"


def test_lines_keep_coming_while_a_slow_batch_produces_no_frame():
    """At 720p on a CPU a batch takes ~20 s, and lines only came when a frame was
    written, so the log went quiet for four intervals and looked hung."""
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(100, out, interval_s=5.0, clock=clock)
    progress.update(4)
    for _ in range(20):  # 20 s of waiting, ticked every second as the pipeline does
        clock.now += 1.0
        progress.tick()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all(line.startswith("streamfix: 4/100 frames") for line in lines)
    assert lines[-1].endswith("elapsed 0:00:20, ETA 0:08:00")


def test_lines_without_a_known_length_have_no_eta():
    out, clock = io.StringIO(), FakeClock()
    progress = LineProgress(None, out, interval_s=1.0, clock=clock)
    clock.now = 2.0
    progress.update(4)
    assert out.getvalue() == "streamfix: 4 frames, 2.0 fps, elapsed 0:00:02\n"


def test_messages_are_printed_as_they_come():
    out = io.StringIO()
    progress = LineProgress(10, out, interval_s=5.0)
    progress.log("engine tensorrt not used: no GPU")
    assert out.getvalue() == "engine tensorrt not used: no GPU\n"


def test_auto_mode_picks_lines_off_a_terminal_and_a_bar_on_one():
    assert isinstance(make_progress(ProgressConfig(), 10, stream=io.StringIO()), LineProgress)
    bar = make_progress(ProgressConfig(), 10, stream=FakeTerminal())
    assert isinstance(bar, BarProgress)
    bar.close()


def test_quiet_prints_nothing():
    out = FakeTerminal()
    progress = make_progress(ProgressConfig(mode="bar"), 10, quiet=True, stream=out)
    assert isinstance(progress, SilentProgress)
    progress.update(3)
    progress.log("hello")
    progress.close()
    assert out.getvalue() == ""


def test_durations_read_as_hours_minutes_seconds():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.4) == "1:02:05"
